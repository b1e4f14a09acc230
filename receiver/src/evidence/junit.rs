//! JUnit XML test reports (`<testsuites>` or a single `<testsuite>` root).
//!
//! Test cases are counted as they appear, at any suite depth: a case with an
//! `<error>` child is an error, else one with `<failure>` is a failure, else
//! one with `<skipped>` is skipped. The totals a file declares in its
//! attributes are kept beside the counts, and a disagreement is noted: a
//! file that says `failures="0"` over a failing case is not believed.
//!
//! The reader is event-based (quick-xml): nothing but the counts and the
//! names of failed cases is kept, entities other than XML's five are
//! refused, and element nesting is bounded by [`Limits::max_depth`].

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use super::{
    DeclaredCounts, Evidence, EvidenceError, FileKind, Limits, MAX_FAILED_CASE_NAMES, TestSummary,
};

const KIND: FileKind = FileKind::Junit;

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Evidence, EvidenceError> {
    // Limitation: only UTF-8 (and so ASCII) documents are read; every JUnit
    // writer in common use emits UTF-8, and transcoding would widen what
    // hostile input can reach.
    let text = std::str::from_utf8(bytes).map_err(|e| EvidenceError::Xml {
        kind: KIND,
        offset: e.valid_up_to() as u64,
        detail: "document is not UTF-8".into(),
    })?;
    let mut walk = Walk::new(limits);
    let mut reader = Reader::from_str(text);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_error(reader.error_position(), &e))?;
        let offset = reader.buffer_position();
        match event {
            Event::Start(element) => walk.open(&element, offset)?,
            Event::Empty(element) => {
                walk.open(&element, offset)?;
                walk.close();
            }
            Event::End(_) => walk.close(),
            Event::Eof => break,
            _ => {}
        }
    }
    walk.finish(reader.buffer_position())
}

/// What the reader has seen so far.
struct Walk<'a> {
    limits: &'a Limits,
    depth: usize,
    root: Option<Root>,
    /// Totals declared by the root, or summed over top-level suites.
    declared: DeclaredCounts,
    summary: TestSummary,
    case: Option<Case>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Root {
    Suites,
    Suite,
}

/// The test case being read: its depth, name and what its children said.
struct Case {
    depth: usize,
    name: String,
    errored: bool,
    failed: bool,
    skipped: bool,
}

impl<'a> Walk<'a> {
    fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            depth: 0,
            root: None,
            declared: DeclaredCounts::default(),
            summary: TestSummary::default(),
            case: None,
        }
    }

    fn open(&mut self, element: &BytesStart<'_>, offset: u64) -> Result<(), EvidenceError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(EvidenceError::TooDeep {
                kind: KIND,
                max: self.limits.max_depth,
            });
        }
        let name = element.local_name();
        match (self.depth, name.as_ref()) {
            (1, _) => self.open_root(element, offset),
            (2, b"testsuite") if self.root == Some(Root::Suites) && !self.root_declared() => {
                let counts = declared_counts(element, offset)?;
                add_declared(&mut self.declared, &counts);
                Ok(())
            }
            (_, b"testcase") if self.case.is_none() => self.open_case(element, offset),
            (_, child) => {
                self.mark_case(child);
                Ok(())
            }
        }
    }

    fn open_root(&mut self, element: &BytesStart<'_>, offset: u64) -> Result<(), EvidenceError> {
        let found = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
        let root = match (self.root, found.as_str()) {
            (None, "testsuites") => Root::Suites,
            (None, "testsuite") => Root::Suite,
            (None, _) => {
                return Err(EvidenceError::NotJunit {
                    kind: KIND,
                    found: super::clip(&found),
                });
            }
            (Some(_), _) => return Err(xml_detail(offset, "a second root element")),
        };
        self.root = Some(root);
        self.declared = declared_counts(element, offset)?;
        Ok(())
    }

    /// Whether the `<testsuites>` root declared any totals itself.
    fn root_declared(&self) -> bool {
        let d = &self.declared;
        d.tests.is_some() || d.failures.is_some() || d.errors.is_some() || d.skipped.is_some()
    }

    fn open_case(&mut self, element: &BytesStart<'_>, offset: u64) -> Result<(), EvidenceError> {
        if !super::json::take_item() {
            return Err(super::json::too_many(KIND, self.limits));
        }
        let classname = attribute(element, b"classname", offset)?.unwrap_or_default();
        let name = attribute(element, b"name", offset)?.unwrap_or_default();
        let name = if classname.is_empty() {
            name
        } else {
            format!("{classname}::{name}")
        };
        let depth = self.depth;
        self.case = Some(Case {
            depth,
            name,
            errored: false,
            failed: false,
            skipped: false,
        });
        Ok(())
    }

    /// Records an outcome element directly inside the current case.
    fn mark_case(&mut self, child: &[u8]) {
        let depth = self.depth;
        let Some(case) = self.case.as_mut().filter(|c| c.depth + 1 == depth) else {
            return;
        };
        match child {
            b"error" => case.errored = true,
            b"failure" => case.failed = true,
            b"skipped" => case.skipped = true,
            _ => {}
        }
    }

    fn close(&mut self) {
        let depth = self.depth;
        if let Some(case) = self.case.take_if(|c| c.depth == depth) {
            self.count(case);
        }
        self.depth = depth.saturating_sub(1);
    }

    fn count(&mut self, case: Case) {
        let summary = &mut self.summary;
        summary.tests += 1;
        if case.errored {
            summary.errors += 1;
        } else if case.failed {
            summary.failures += 1;
        } else {
            summary.skipped += u64::from(case.skipped);
            return;
        }
        if summary.failed_cases.len() < MAX_FAILED_CASE_NAMES {
            summary.failed_cases.push(super::clip(&case.name));
        } else {
            summary.failed_cases_omitted += 1;
        }
    }

    fn finish(mut self, offset: u64) -> Result<Evidence, EvidenceError> {
        if self.root.is_none() {
            return Err(EvidenceError::NotJunit {
                kind: KIND,
                found: String::new(),
            });
        }
        if self.depth != 0 {
            return Err(xml_detail(offset, "the document ends inside an element"));
        }
        let mut evidence = Evidence::new(KIND);
        if self.summary.tests == 0 {
            self.use_declared(&mut evidence);
        } else {
            evidence
                .notes
                .extend(disagreements(&self.summary, &self.declared));
        }
        self.summary.declared = self.declared;
        evidence.tests = Some(self.summary);
        Ok(evidence)
    }

    /// A file with totals but no cases: the totals are all there is.
    fn use_declared(&mut self, evidence: &mut Evidence) {
        let d = &self.declared;
        self.summary.tests = d.tests.unwrap_or(0);
        self.summary.failures = d.failures.unwrap_or(0);
        self.summary.errors = d.errors.unwrap_or(0);
        self.summary.skipped = d.skipped.unwrap_or(0);
        if self.summary.tests > 0 {
            evidence
                .notes
                .push("JUnit file lists no test cases; its declared totals are used".into());
        }
    }
}

fn disagreements(counted: &TestSummary, declared: &DeclaredCounts) -> Vec<String> {
    let pairs = [
        ("tests", counted.tests, declared.tests),
        ("failures", counted.failures, declared.failures),
        ("errors", counted.errors, declared.errors),
        ("skipped", counted.skipped, declared.skipped),
    ];
    let differ = pairs
        .into_iter()
        .filter_map(|(name, got, said)| Some((name, got, said?)));
    differ
        .filter(|(_, got, said)| got != said)
        .map(|(name, got, said)| format!("JUnit file declares {name}={said} but lists {got}"))
        .collect()
}

fn declared_counts(element: &BytesStart<'_>, offset: u64) -> Result<DeclaredCounts, EvidenceError> {
    Ok(DeclaredCounts {
        tests: count_attribute(element, "tests", offset)?,
        failures: count_attribute(element, "failures", offset)?,
        errors: count_attribute(element, "errors", offset)?,
        skipped: count_attribute(element, "skipped", offset)?,
    })
}

fn add_declared(total: &mut DeclaredCounts, suite: &DeclaredCounts) {
    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    };
    total.tests = add(total.tests, suite.tests);
    total.failures = add(total.failures, suite.failures);
    total.errors = add(total.errors, suite.errors);
    total.skipped = add(total.skipped, suite.skipped);
}

/// A count attribute; empty counts as absent.
fn count_attribute(
    element: &BytesStart<'_>,
    name: &'static str,
    offset: u64,
) -> Result<Option<u64>, EvidenceError> {
    let Some(value) = attribute(element, name.as_bytes(), offset)? else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || EvidenceError::BadCount {
        kind: KIND,
        name,
        value: super::clip(value),
    };
    value.parse().map(Some).map_err(|_| bad())
}

fn attribute(
    element: &BytesStart<'_>,
    name: &[u8],
    offset: u64,
) -> Result<Option<String>, EvidenceError> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| xml_detail(offset, &e.to_string()))?;
        if attribute.key.local_name().as_ref() != name {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| xml_detail(offset, &e.to_string()))?;
        return Ok(Some(value.into_owned()));
    }
    Ok(None)
}

fn xml_error(offset: u64, error: &quick_xml::Error) -> EvidenceError {
    xml_detail(offset, &error.to_string())
}

fn xml_detail(offset: u64, detail: &str) -> EvidenceError {
    EvidenceError::Xml {
        kind: KIND,
        offset,
        detail: super::clip(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{fixture_root, parse_fixture};

    fn parse_str(text: &str) -> Result<Evidence, EvidenceError> {
        super::super::parse(KIND, text.as_bytes(), &Limits::default())
    }

    fn figures(summary: &TestSummary) -> (u64, u64, u64, u64) {
        (
            summary.tests,
            summary.failures,
            summary.errors,
            summary.skipped,
        )
    }

    #[test]
    fn fixture_counts() {
        let Some(root) = fixture_root() else { return };
        let expected = [
            ("junit/java-junit4-complete.xml", (8, 1, 1, 1), 0),
            ("junit/jest-junit.xml", (6, 4, 0, 1), 0),
            ("junit/pytest-xunit.xml", (10, 2, 0, 2), 1),
            ("junit/trivy-alpine-310.junit.xml", (4, 4, 0, 0), 0),
        ];
        for (rel, counts, notes) in expected {
            let evidence = parse_fixture(&root, rel, KIND);
            let summary = evidence.tests.as_ref().unwrap();
            assert_eq!(figures(summary), counts, "{rel}");
            assert_eq!(evidence.notes.len(), notes, "{rel}: {:?}", evidence.notes);
        }
    }

    #[test]
    fn fixture_failed_case_names() {
        let Some(root) = fixture_root() else { return };
        let java = parse_fixture(&root, "junit/java-junit4-complete.xml", KIND);
        let names = &java.tests.as_ref().unwrap().failed_cases;
        assert_eq!(
            names,
            &[
                "Tests.Registration::testCase5",
                "Tests.Registration::testCase6"
            ]
        );

        let pytest = parse_fixture(&root, "junit/pytest-xunit.xml", KIND);
        let summary = pytest.tests.unwrap();
        assert_eq!(
            summary.failed_cases,
            [
                "tests.test_lib::test_always_fail",
                "tests.test_lib::test_error"
            ]
        );
        assert_eq!(
            summary.declared.tests,
            Some(15),
            "pytest's suite claims 15 tests"
        );
        assert_eq!(pytest.notes, ["JUnit file declares tests=15 but lists 10"]);

        let jest = parse_fixture(&root, "junit/jest-junit.xml", KIND);
        let summary = jest.tests.unwrap();
        assert_eq!(summary.failed_cases.len(), 4);
        assert_eq!(summary.failed_cases[3], "Timeout test");
        assert_eq!(summary.declared.skipped, None, "the jest root does not say");
    }

    #[test]
    fn a_lying_total_is_noted() {
        let xml = r#"<testsuite tests="1" failures="0"><testcase name="a"><failure/></testcase></testsuite>"#;
        let evidence = parse_str(xml).unwrap();
        assert_eq!(figures(evidence.tests.as_ref().unwrap()), (1, 1, 0, 0));
        assert_eq!(
            evidence.notes,
            ["JUnit file declares failures=0 but lists 1"]
        );
    }

    #[test]
    fn totals_alone_are_used_when_no_cases_are_listed() {
        let evidence = parse_str(r#"<testsuites tests="5" failures="2"/>"#).unwrap();
        assert_eq!(figures(evidence.tests.as_ref().unwrap()), (5, 2, 0, 0));
        assert_eq!(evidence.notes.len(), 1);
    }

    #[test]
    fn nested_suites_and_error_over_failure() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite><testsuite>
            <testcase classname="c" name="x"><failure/><error/></testcase>
            <testcase name="y"><skipped/></testcase></testsuite></testsuite></testsuites>"#;
        let evidence = parse_str(xml).unwrap();
        let summary = evidence.tests.unwrap();
        assert_eq!(figures(&summary), (2, 0, 1, 1));
        assert_eq!(summary.failed_cases, ["c::x"]);
    }

    #[test]
    fn malformed_documents_are_typed_errors() {
        let not_junit = parse_str("<html></html>").unwrap_err();
        assert_eq!(
            not_junit,
            EvidenceError::NotJunit {
                kind: KIND,
                found: "html".into()
            }
        );
        assert!(matches!(
            parse_str("<testsuite><testcase></testsuite>"),
            Err(EvidenceError::Xml { .. })
        ));
        assert!(matches!(
            parse_str("<testsuite>"),
            Err(EvidenceError::Xml { .. })
        ));
        assert!(matches!(parse_str(""), Err(EvidenceError::NotJunit { .. })));
        let bad_count = parse_str(r#"<testsuite tests="many"/>"#).unwrap_err();
        assert!(matches!(
            bad_count,
            EvidenceError::BadCount { name: "tests", .. }
        ));
        let entity = parse_str(r#"<testsuite name="&boom;"><testcase name="&boom;"/></testsuite>"#);
        assert!(
            matches!(entity, Err(EvidenceError::Xml { .. })),
            "{entity:?}"
        );
        assert!(matches!(
            parse_str("<testsuite/>\u{0}\u{ff}"),
            Ok(_) | Err(EvidenceError::Xml { .. })
        ));
        let latin1 = super::super::parse(KIND, b"<testsuite name=\"\xe9\"/>", &Limits::default());
        assert!(matches!(latin1, Err(EvidenceError::Xml { offset: 17, .. })));
    }

    #[test]
    fn deep_elements_hit_the_depth_limit() {
        let xml = format!("<testsuites>{}", "<a>".repeat(200));
        let err = parse_str(&xml).unwrap_err();
        assert_eq!(
            err,
            EvidenceError::TooDeep {
                kind: KIND,
                max: 128
            }
        );
    }

    #[test]
    fn case_count_is_bounded_by_the_item_limit() {
        let limits = Limits {
            max_items: 2,
            ..Limits::default()
        };
        let xml = r#"<testsuite><testcase/><testcase/><testcase/></testsuite>"#;
        let err = super::super::parse(KIND, xml.as_bytes(), &limits).unwrap_err();
        assert_eq!(err, EvidenceError::TooManyItems { kind: KIND, max: 2 });
    }
}
