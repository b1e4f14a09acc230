//! Link rates in bits per second.
//!
//! Operators write rates the way network gear prints them: `800M`, `1.5G`,
//! `100k`, `250000`, optionally followed by `bit`, `bit/s` or `bps`. Prefixes
//! are decimal SI (k = 1000) and case-insensitive, since a milli- or
//! mebi-bit link rate means nothing here. A `B` for bytes is refused rather
//! than guessed at. Parsing is exact: no floating point is involved, so
//! `1.5G` is exactly 1 500 000 000 bit/s.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

/// A link rate in bits per second; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(NonZeroU64);

/// Why a rate string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateParseError {
    #[error("link rate is empty; write it like 800M, 1.5G or 250000")]
    Empty,
    #[error("link rate {input:?} is negative")]
    Negative { input: String },
    #[error("link rate {input:?} does not start with a number; write it like 800M or 1.5G")]
    NotANumber { input: String },
    #[error(
        "link rate {input:?} has unknown unit {unit:?}; use k, M, G or T, then bit, bit/s or bps"
    )]
    UnknownUnit { input: String, unit: String },
    #[error("link rate {input:?} is zero")]
    Zero { input: String },
    #[error("link rate {input:?} is not a whole number of bits per second")]
    Fractional { input: String },
    #[error("link rate {input:?} is too large (at most {max} bit/s)", max = u64::MAX)]
    Overflow { input: String },
}

impl Rate {
    /// A rate of `bits` per second, or `None` for zero.
    pub const fn from_bits_per_second(bits: u64) -> Option<Rate> {
        match NonZeroU64::new(bits) {
            Some(bits) => Some(Rate(bits)),
            None => None,
        }
    }

    /// The rate in bits per second.
    pub const fn bits_per_second(self) -> u64 {
        self.0.get()
    }

    /// The rate in bytes per second; fractional for rates that are not a
    /// multiple of 8 bit/s.
    pub fn bytes_per_second(self) -> f64 {
        self.0.get() as f64 / 8.0
    }
}

impl FromStr for Rate {
    type Err = RateParseError;

    fn from_str(input: &str) -> Result<Rate, RateParseError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(RateParseError::Empty);
        }
        if text.starts_with('-') {
            return Err(RateParseError::Negative {
                input: input.to_owned(),
            });
        }

        let split = text.find(|c: char| !c.is_ascii_digit() && c != '.');
        let (number, unit) = text.split_at(split.unwrap_or(text.len()));
        if number.is_empty() {
            return Err(RateParseError::NotANumber {
                input: input.to_owned(),
            });
        }
        let multiplier =
            unit_multiplier(unit.trim()).ok_or_else(|| RateParseError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.trim().to_owned(),
            })?;
        scale_decimal(number, multiplier).map_err(|fault| fault.into_error(input))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.bits_per_second();
        let (divisor, prefix, digits) = display_prefix(bits);
        let whole = bits / divisor;
        let rest = bits % divisor;
        if rest == 0 {
            return write!(f, "{whole} {prefix}bit/s");
        }

        let fraction = format!("{rest:0digits$}");
        write!(
            f,
            "{whole}.{} {prefix}bit/s",
            fraction.trim_end_matches('0')
        )
    }
}

/// What went wrong turning digits into a whole number of bits.
enum NumberFault {
    NotANumber,
    Zero,
    Fractional,
    Overflow,
}

impl NumberFault {
    fn into_error(self, input: &str) -> RateParseError {
        let input = input.to_owned();
        match self {
            NumberFault::NotANumber => RateParseError::NotANumber { input },
            NumberFault::Zero => RateParseError::Zero { input },
            NumberFault::Fractional => RateParseError::Fractional { input },
            NumberFault::Overflow => RateParseError::Overflow { input },
        }
    }
}

/// The multiplier named by an SI prefix and optional bit unit.
fn unit_multiplier(unit: &str) -> Option<u128> {
    let mut chars = unit.chars();
    let (multiplier, rest) = match chars.next().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (1_000, chars.as_str()),
        Some('m') => (1_000_000, chars.as_str()),
        Some('g') => (1_000_000_000, chars.as_str()),
        Some('t') => (1_000_000_000_000, chars.as_str()),
        _ => (1, unit),
    };
    matches!(rest, "" | "bit" | "bit/s" | "bps").then_some(multiplier)
}

/// Exactly `number * multiplier` for a decimal `number` such as "1.5".
fn scale_decimal(number: &str, multiplier: u128) -> Result<Rate, NumberFault> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(NumberFault::NotANumber);
    }

    let fraction = fraction.trim_end_matches('0');
    let scale = u32::try_from(fraction.len())
        .ok()
        .and_then(|len| 10u128.checked_pow(len))
        .ok_or(NumberFault::Fractional)?;
    let numerator = parse_digits(whole)?
        .checked_mul(scale)
        .and_then(|n| n.checked_add(parse_digits(fraction).ok()?))
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or(NumberFault::Overflow)?;
    if numerator % scale != 0 {
        return Err(NumberFault::Fractional);
    }

    let bits = u64::try_from(numerator / scale).map_err(|_| NumberFault::Overflow)?;
    Rate::from_bits_per_second(bits).ok_or(NumberFault::Zero)
}

/// Parses a run of ASCII digits; the empty string is zero.
fn parse_digits(digits: &str) -> Result<u128, NumberFault> {
    if digits.is_empty() {
        return Ok(0);
    }
    digits.parse().map_err(|_| NumberFault::Overflow)
}

/// The largest SI prefix not above `bits`: divisor, symbol, fraction digits.
fn display_prefix(bits: u64) -> (u64, &'static str, usize) {
    const PREFIXES: [(u64, &str, usize); 4] = [
        (1_000_000_000_000, "T", 12),
        (1_000_000_000, "G", 9),
        (1_000_000, "M", 6),
        (1_000, "k", 3),
    ];
    PREFIXES
        .into_iter()
        .find(|(divisor, _, _)| bits >= *divisor)
        .unwrap_or((1, "", 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(text: &str) -> u64 {
        text.parse::<Rate>().unwrap().bits_per_second()
    }

    #[test]
    fn parses_si_prefixes() {
        assert_eq!(bits("800M"), 800_000_000);
        assert_eq!(bits("1G"), 1_000_000_000);
        assert_eq!(bits("1.5G"), 1_500_000_000);
        assert_eq!(bits("100k"), 100_000);
        assert_eq!(bits("100K"), 100_000);
        assert_eq!(bits("250000"), 250_000);
        assert_eq!(bits("2T"), 2_000_000_000_000);
        assert_eq!(bits("0.5k"), 500);
        assert_eq!(bits(".25M"), 250_000);
        assert_eq!(bits("10."), 10);
    }

    #[test]
    fn parses_explicit_bit_units() {
        assert_eq!(bits("800Mbit"), 800_000_000);
        assert_eq!(bits("800 Mbps"), 800_000_000);
        assert_eq!(bits("1.5 Gbit/s"), 1_500_000_000);
        assert_eq!(bits("250000bps"), 250_000);
        assert_eq!(bits("  9600 bit  "), 9_600);
    }

    #[test]
    fn refuses_zero_negative_and_garbage() {
        let parse = |text: &str| text.parse::<Rate>().unwrap_err();
        let input = |text: &str| text.to_owned();
        assert_eq!(parse(""), RateParseError::Empty);
        assert_eq!(parse("0"), RateParseError::Zero { input: input("0") });
        assert_eq!(
            parse("0.0G"),
            RateParseError::Zero {
                input: input("0.0G")
            }
        );
        assert_eq!(
            parse("-5M"),
            RateParseError::Negative {
                input: input("-5M")
            }
        );
        assert_eq!(
            parse("fast"),
            RateParseError::NotANumber {
                input: input("fast")
            }
        );
        assert_eq!(parse("."), RateParseError::NotANumber { input: input(".") });
        assert_eq!(
            parse("1.2.3M"),
            RateParseError::NotANumber {
                input: input("1.2.3M")
            }
        );
        let unit = |text: &str, unit: &str| RateParseError::UnknownUnit {
            input: text.to_owned(),
            unit: unit.to_owned(),
        };
        assert_eq!(parse("800MB"), unit("800MB", "MB"));
        assert_eq!(parse("800 MBps"), unit("800 MBps", "MBps"));
        assert_eq!(parse("1X"), unit("1X", "X"));
    }

    #[test]
    fn refuses_fractional_bits_and_overflow() {
        let parse = |text: &str| text.parse::<Rate>().unwrap_err();
        let fractional = RateParseError::Fractional {
            input: "1.5".to_owned(),
        };
        assert_eq!(parse("1.5"), fractional);
        assert!(matches!(
            parse("1.0000000001k"),
            RateParseError::Fractional { .. }
        ));
        assert!(matches!(
            parse("0.1234567890123456789012345678901234567890T"),
            RateParseError::Fractional { .. }
        ));
        assert!(matches!(
            parse("18446744073709551616"),
            RateParseError::Overflow { .. }
        ));
        assert!(matches!(
            parse("20000000T"),
            RateParseError::Overflow { .. }
        ));
        let huge = "9".repeat(60);
        assert!(matches!(parse(&huge), RateParseError::Overflow { .. }));
        assert_eq!(bits("18446744073709551615"), u64::MAX);
    }

    #[test]
    fn displays_with_the_largest_whole_prefix() {
        let show = |text: &str| text.parse::<Rate>().unwrap().to_string();
        assert_eq!(show("800M"), "800 Mbit/s");
        assert_eq!(show("1.5G"), "1.5 Gbit/s");
        assert_eq!(show("250000"), "250 kbit/s");
        assert_eq!(show("123456"), "123.456 kbit/s");
        assert_eq!(show("1000001"), "1.000001 Mbit/s");
        assert_eq!(show("999"), "999 bit/s");
    }

    #[test]
    fn display_round_trips_through_parse() {
        for text in ["800M", "1.5G", "123456", "7", "1000001", "3.25T"] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(rate.to_string().parse::<Rate>().unwrap(), rate);
        }
    }

    #[test]
    fn converts_to_bytes_per_second() {
        assert_eq!(bits("800M") / 8, 100_000_000);
        assert_eq!(
            "800M".parse::<Rate>().unwrap().bytes_per_second(),
            100_000_000.0
        );
        assert_eq!("12".parse::<Rate>().unwrap().bytes_per_second(), 1.5);
        assert_eq!(Rate::from_bits_per_second(0), None);
    }
}
