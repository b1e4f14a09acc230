//! What an impaired link does to traffic, and how operators write it.

use crate::rate::Rate;

/// Gilbert–Elliott style loss bursts: the link flips into a state where it
/// drops everything, then flips back after a geometric number of datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Probability, per datagram, that a burst starts with this datagram.
    pub enter: f64,
    /// Mean number of datagrams a burst drops; at least one.
    pub mean_len: f64,
}

/// The impairments to apply; the default applies none.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairments {
    /// Probability that any one datagram is dropped.
    pub loss: f64,
    pub burst: Option<Burst>,
    /// Probability that a datagram is held back and released after the next
    /// `reorder_depth` datagrams have gone out.
    pub reorder: f64,
    pub reorder_depth: usize,
    /// Probability that a datagram is sent twice in a row.
    pub duplicate: f64,
    /// Probability that one random bit of a random byte is flipped.
    pub corrupt: f64,
    /// A rate cap: excess waits in a bounded queue, then is tail-dropped.
    pub rate: Option<Rate>,
    /// Seeds every random choice, so a run can be repeated exactly.
    pub seed: u64,
}

impl Default for Impairments {
    fn default() -> Impairments {
        Impairments {
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_depth: 3,
            duplicate: 0.0,
            corrupt: 0.0,
            rate: None,
            seed: 0,
        }
    }
}

/// Why a set of impairments cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImpairmentError {
    #[error("{name} probability {value} is outside 0 to 1")]
    Probability { name: &'static str, value: f64 },
    #[error("mean burst length {mean_len} is shorter than one datagram")]
    BurstLength { mean_len: f64 },
    #[error("reordering needs a reorder depth of at least one datagram")]
    ReorderDepth,
}

impl Impairments {
    /// Checks every field, so the link itself never meets a bad value.
    ///
    /// # Errors
    ///
    /// Names the first field out of range.
    pub fn validate(&self) -> Result<(), ImpairmentError> {
        check_probability("loss", self.loss)?;
        check_probability("reorder", self.reorder)?;
        check_probability("duplicate", self.duplicate)?;
        check_probability("corrupt", self.corrupt)?;
        if let Some(burst) = self.burst {
            check_probability("burst enter", burst.enter)?;
            check_burst_length(burst.mean_len)?;
        }
        if self.reorder > 0.0 && self.reorder_depth == 0 {
            return Err(ImpairmentError::ReorderDepth);
        }
        Ok(())
    }
}

/// Why a probability string was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbabilityParseError {
    #[error("{input:?} is not a probability; write it as a fraction (0.02) or percentage (2%)")]
    NotANumber { input: String },
    #[error("{input:?} is outside 0 to 1 (0% to 100%)")]
    OutOfRange { input: String },
}

/// Parses a probability written as a fraction ("0.02") or a percentage
/// ("2%"); both mean the same.
///
/// # Errors
///
/// Refuses anything that is not a finite number from 0 to 1 (0% to 100%).
pub fn parse_probability(input: &str) -> Result<f64, ProbabilityParseError> {
    let text = input.trim();
    let (number, divisor) = match text.strip_suffix('%') {
        Some(percent) => (percent.trim_end(), 100.0),
        None => (text, 1.0),
    };
    let value = match number.parse::<f64>() {
        Ok(value) if value.is_finite() => value / divisor,
        _ => {
            return Err(ProbabilityParseError::NotANumber {
                input: input.to_owned(),
            });
        }
    };
    if !(0.0..=1.0).contains(&value) {
        return Err(ProbabilityParseError::OutOfRange {
            input: input.to_owned(),
        });
    }
    Ok(value)
}

fn check_probability(name: &'static str, value: f64) -> Result<(), ImpairmentError> {
    if (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    Err(ImpairmentError::Probability { name, value })
}

fn check_burst_length(mean_len: f64) -> Result<(), ImpairmentError> {
    if mean_len >= 1.0 && mean_len.is_finite() {
        return Ok(());
    }
    Err(ImpairmentError::BurstLength { mean_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_fractions_agree() {
        assert_eq!(parse_probability("2%").unwrap(), 0.02);
        assert_eq!(parse_probability("0.02").unwrap(), 0.02);
        assert_eq!(parse_probability(" 2.5 % ").unwrap(), 0.025);
        assert_eq!(parse_probability("0").unwrap(), 0.0);
        assert_eq!(parse_probability("100%").unwrap(), 1.0);
        assert_eq!(parse_probability("1").unwrap(), 1.0);
    }

    #[test]
    fn refuses_what_is_not_a_probability() {
        let not_a_number = |text: &str| ProbabilityParseError::NotANumber { input: text.into() };
        let out_of_range = |text: &str| ProbabilityParseError::OutOfRange { input: text.into() };
        assert_eq!(parse_probability("lots"), Err(not_a_number("lots")));
        assert_eq!(parse_probability("%"), Err(not_a_number("%")));
        assert_eq!(parse_probability("NaN"), Err(not_a_number("NaN")));
        assert_eq!(parse_probability("inf%"), Err(not_a_number("inf%")));
        assert_eq!(parse_probability("2"), Err(out_of_range("2")));
        assert_eq!(parse_probability("150%"), Err(out_of_range("150%")));
        assert_eq!(parse_probability("-1%"), Err(out_of_range("-1%")));
    }

    #[test]
    fn validation_names_the_bad_field() {
        let bad = Impairments {
            duplicate: 1.5,
            ..Impairments::default()
        };
        let error = ImpairmentError::Probability {
            name: "duplicate",
            value: 1.5,
        };
        assert_eq!(bad.validate(), Err(error));

        let nan = Impairments {
            loss: f64::NAN,
            ..Impairments::default()
        };
        assert!(matches!(
            nan.validate(),
            Err(ImpairmentError::Probability { name: "loss", .. })
        ));

        let burst = Some(Burst {
            enter: 0.01,
            mean_len: 0.5,
        });
        let short = Impairments {
            burst,
            ..Impairments::default()
        };
        assert_eq!(
            short.validate(),
            Err(ImpairmentError::BurstLength { mean_len: 0.5 })
        );

        let shallow = Impairments {
            reorder: 0.1,
            reorder_depth: 0,
            ..Impairments::default()
        };
        assert_eq!(shallow.validate(), Err(ImpairmentError::ReorderDepth));
    }

    #[test]
    fn the_default_is_valid_and_changes_nothing() {
        let none = Impairments::default();
        assert_eq!(none.validate(), Ok(()));
        assert_eq!(
            (none.loss, none.reorder, none.duplicate, none.corrupt),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((none.burst, none.rate), (None, None));
    }
}
