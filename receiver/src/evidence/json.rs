//! Bounded JSON reading shared by the JSON formats.
//!
//! Three bounds apply. Size is checked by the caller before anything else.
//! Nesting is checked by [`check_depth`], a byte scan that runs before
//! serde_json sees the input. Item counts are checked while deserialising:
//! every list of report items is an [`Items`], and each element taken from
//! any `Items` in the file spends one unit of a per-parse budget, so a file
//! of millions of tiny `{}` elements stops at the limit instead of growing
//! millions of structs.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};

use super::{EvidenceError, FileKind, JsonFault, Limits};

thread_local! {
    /// Items the current parse may still take; `None` outside a parse.
    static ITEMS_LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    /// Set when the budget ran out, so the error can be named for what it is.
    static ITEMS_EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `parse` with a budget of `max_items`. A nested call (an envelope's
/// payload) shares the outer budget.
pub(super) fn with_item_budget<R>(max_items: usize, parse: impl FnOnce() -> R) -> R {
    if ITEMS_LEFT.get().is_some() {
        return parse();
    }
    ITEMS_LEFT.set(Some(max_items));
    ITEMS_EXCEEDED.set(false);
    let _reset = BudgetReset;
    parse()
}

/// Clears the budget when a parse ends, even by unwinding in a test.
struct BudgetReset;

impl Drop for BudgetReset {
    fn drop(&mut self) {
        ITEMS_LEFT.set(None);
        ITEMS_EXCEEDED.set(false);
    }
}

/// Spends one item; `false` when the budget is gone.
pub(super) fn take_item() -> bool {
    match ITEMS_LEFT.get() {
        Some(0) => {
            ITEMS_EXCEEDED.set(true);
            false
        }
        Some(left) => {
            ITEMS_LEFT.set(Some(left - 1));
            true
        }
        None => true,
    }
}

/// The error for a spent budget.
pub(super) fn too_many(kind: FileKind, limits: &Limits) -> EvidenceError {
    EvidenceError::TooManyItems {
        kind,
        max: limits.max_items,
    }
}

/// A list of report items, counted against the item budget. A JSON `null`
/// reads as an empty list (Go tools write nil slices as `null`).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Items<T>(pub Vec<T>);

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Items<T> {
    pub(super) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub(super) fn first(&self) -> Option<&T> {
        self.0.first()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a, T> IntoIterator for &'a Items<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> IntoIterator for Items<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_option(ItemsVisitor(PhantomData))
    }
}

struct ItemsVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ItemsVisitor<T> {
    type Value = Items<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Items::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Items::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Never trust a size hint for allocation; grow as elements arrive.
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            if !take_item() {
                return Err(de::Error::custom("item limit reached"));
            }
            items.push(item);
        }
        Ok(Items(items))
    }
}

/// Deserialises a whole document of `kind` after the depth scan.
pub(super) fn from_slice<T: DeserializeOwned>(
    kind: FileKind,
    bytes: &[u8],
    limits: &Limits,
) -> Result<T, EvidenceError> {
    check_depth(kind, bytes, limits.max_depth)?;
    serde_json::from_slice(bytes).map_err(|e| json_error(kind, &e, limits))
}

/// Maps a serde_json error to the typed error, naming a spent item budget
/// or serde_json's own depth refusal for what they are.
pub(super) fn json_error(
    kind: FileKind,
    error: &serde_json::Error,
    limits: &Limits,
) -> EvidenceError {
    use serde_json::error::Category;

    if ITEMS_EXCEEDED.get() {
        return too_many(kind, limits);
    }
    if error.to_string().starts_with("recursion limit exceeded") {
        return EvidenceError::TooDeep {
            kind,
            max: limits.max_depth.min(SERDE_JSON_DEPTH),
        };
    }
    let fault = match error.classify() {
        Category::Syntax | Category::Io => JsonFault::Syntax,
        Category::Data => JsonFault::Shape,
        Category::Eof => JsonFault::Truncated,
    };
    EvidenceError::Json {
        kind,
        fault,
        line: error.line(),
        column: error.column(),
        detail: super::clip(&error.to_string()),
    }
}

/// serde_json's fixed recursion limit.
const SERDE_JSON_DEPTH: usize = 128;

/// Refuses JSON whose arrays and objects nest deeper than `max`. Brackets
/// inside strings do not count; anything else malformed is left for the
/// parser to report.
pub(super) fn check_depth(kind: FileKind, bytes: &[u8], max: usize) -> Result<(), EvidenceError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(EvidenceError::TooDeep { kind, max });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a JSON value that is either a string or an object of `T` (Grype's
/// `source.target` is a path for directories and an object for images).
pub(super) fn string_or<'de, D, T>(deserializer: D) -> Result<StringOr<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(StringOrVisitor(PhantomData))
}

/// See [`string_or`].
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum StringOr<T> {
    String(String),
    Value(T),
    #[default]
    Absent,
}

struct StringOrVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for StringOrVisitor<T> {
    type Value = StringOr<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an object")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(StringOr::String(text.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(StringOr::Absent)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(StringOr::Value(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan_ignores_brackets_in_strings() {
        let text = r#"{"a": "[[[[[[[[", "b": ["\"[[[["]}"#;
        assert!(check_depth(FileKind::Sarif, text.as_bytes(), 2).is_ok());
        assert!(check_depth(FileKind::Sarif, b"[[[]]]", 2).is_err());
        assert!(check_depth(FileKind::Sarif, b"[[]][[]]", 2).is_ok());
    }

    #[test]
    fn items_read_null_as_empty_and_spend_the_budget() {
        let empty: Items<u8> = serde_json::from_str("null").unwrap();
        assert!(empty.is_empty());
        let limits = Limits {
            max_items: 2,
            ..Limits::default()
        };
        let result = with_item_budget(limits.max_items, || {
            from_slice::<Items<u8>>(FileKind::Trivy, b"[1,2,3]", &limits)
        });
        assert_eq!(result, Err(too_many(FileKind::Trivy, &limits)));
        assert_eq!(ITEMS_LEFT.get(), None, "budget is cleared after a parse");
    }
}
