//! SARIF 2.1.0 logs (OASIS "Static Analysis Results Interchange Format").
//!
//! A result whose rule id is a CVE or GHSA id becomes a [`Vulnerability`];
//! any other failing result becomes a [`Finding`]. Severity comes from the
//! rule's `security-severity` property (a CVSS score, the convention code
//! scanners share), then from a severity word among the rule's tags, then
//! from the result's level (SARIF 2.1.0 §3.27.10).

use serde::Deserialize;

use super::json::{self, Items};
use super::{Evidence, FileKind, Finding, FixState, Limits, Severity, Vulnerability};

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Evidence, super::EvidenceError> {
    let log: Log = json::from_slice(FileKind::Sarif, bytes, limits)?;
    let mut evidence = Evidence::new(FileKind::Sarif);
    if log.version.as_deref() != Some("2.1.0") {
        let found = log.version.as_deref().unwrap_or("none");
        evidence.notes.push(format!(
            "SARIF version is {}, read as 2.1.0",
            super::clip(found)
        ));
    }
    let mut not_failing = 0usize;
    for run in &log.runs {
        not_failing += read_run(run, &mut evidence);
    }
    if not_failing > 0 {
        let note = format!("{not_failing} SARIF results are passes or not applicable; left out");
        evidence.notes.push(note);
    }
    Ok(evidence)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Log {
    version: Option<String>,
    runs: Items<Run>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Run {
    tool: Tool,
    results: Items<SarifResult>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tool {
    driver: Driver,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Driver {
    rules: Items<Rule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Rule {
    id: String,
    properties: RuleProperties,
    default_configuration: Configuration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleProperties {
    #[serde(rename = "security-severity")]
    security_severity: Option<Score>,
    tags: Items<String>,
}

/// `security-severity` is written as a string by convention; some tools
/// write a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Score {
    Text(String),
    Number(f64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Configuration {
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<usize>,
    rule: Option<RuleReference>,
    kind: Option<String>,
    level: Option<String>,
    message: Message,
    locations: Items<Location>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleReference {
    id: Option<String>,
    index: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Message {
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Location {
    physical_location: PhysicalLocation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArtifactLocation {
    uri: Option<String>,
}

/// Reads one run; returns how many results were not failures.
fn read_run(run: &Run, evidence: &mut Evidence) -> usize {
    let mut not_failing = 0;
    for result in &run.results {
        if matches!(result.kind.as_deref(), Some("pass" | "notApplicable")) {
            not_failing += 1;
            continue;
        }
        let rule = find_rule(run, result);
        let rule_id = result_rule_id(result, rule);
        let severity = severity(result, rule);
        if is_vulnerability_id(&rule_id) {
            evidence
                .vulnerabilities
                .push(vulnerability(rule_id, severity, result));
        } else {
            let location = first_location(result);
            evidence.findings.push(Finding {
                rule_id,
                severity,
                location,
            });
        }
    }
    not_failing
}

/// The rule a result refers to: by index when the index is in range, else
/// by id (SARIF §3.27.5 – §3.27.7).
fn find_rule<'a>(run: &'a Run, result: &SarifResult) -> Option<&'a Rule> {
    let reference = result.rule.as_ref();
    let index = result.rule_index.or(reference.and_then(|r| r.index));
    if let Some(rule) = index.and_then(|i| run.tool.driver.rules.0.get(i)) {
        return Some(rule);
    }
    let id = result
        .rule_id
        .as_deref()
        .or(reference.and_then(|r| r.id.as_deref()))?;
    run.tool.driver.rules.iter().find(|r| r.id == id)
}

fn result_rule_id(result: &SarifResult, rule: Option<&Rule>) -> String {
    let reference = result.rule.as_ref().and_then(|r| r.id.clone());
    let id = result
        .rule_id
        .clone()
        .or(reference)
        .or(rule.map(|r| r.id.clone()));
    id.unwrap_or_default()
}

fn is_vulnerability_id(id: &str) -> bool {
    let upper = id.to_ascii_uppercase();
    upper.starts_with("CVE-") || upper.starts_with("GHSA-")
}

fn severity(result: &SarifResult, rule: Option<&Rule>) -> Severity {
    let properties = rule.map(|r| &r.properties);
    let scored = properties
        .and_then(|p| p.security_severity.as_ref())
        .and_then(score);
    if let Some(score) = scored {
        return Severity::from_cvss(score);
    }
    let tags = properties.into_iter().flat_map(|p| p.tags.iter());
    let tagged = tags
        .map(|t| Severity::from_word(t))
        .max()
        .unwrap_or(Severity::Unknown);
    if tagged != Severity::Unknown {
        return tagged;
    }
    let default_level = rule.and_then(|r| r.default_configuration.level.as_deref());
    level_severity(result.level.as_deref().or(default_level))
}

fn score(score: &Score) -> Option<f64> {
    match score {
        Score::Text(text) => text.trim().parse().ok(),
        Score::Number(number) => Some(*number),
    }
}

/// SARIF levels; an absent level means `warning` (§3.27.10).
fn level_severity(level: Option<&str>) -> Severity {
    match level.unwrap_or("warning") {
        "error" => Severity::High,
        "warning" => Severity::Medium,
        "note" => Severity::Low,
        "none" => Severity::Negligible,
        _ => Severity::Unknown,
    }
}

// Limitation: SARIF has no field for the affected package. The package,
// installed and fixed versions are read from the `Package:`, `Installed
// Version:` and `Fixed Version:` lines Trivy writes into the message; other
// tools' results carry the id and severity only.
fn vulnerability(id: String, severity: Severity, result: &SarifResult) -> Vulnerability {
    let text = result.message.text.as_deref().unwrap_or_default();
    let field = |label: &str| {
        let value = text.lines().find_map(|l| l.strip_prefix(label))?.trim();
        Some(value.to_owned()).filter(|v| !v.is_empty())
    };
    let fix = match field("Fixed Version:") {
        Some(version) => FixState::Fixed {
            version: Some(version),
        },
        None => FixState::Unknown,
    };
    Vulnerability {
        id,
        package: field("Package:"),
        installed_version: field("Installed Version:"),
        purl: None,
        severity,
        fix,
    }
}

fn first_location(result: &SarifResult) -> Option<String> {
    let location = result.locations.first()?;
    location.physical_location.artifact_location.uri.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{fixture_root, parse_fixture};

    fn parse_str(text: &str) -> Evidence {
        super::super::parse(FileKind::Sarif, text.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn fixture_trivy_image_scan() {
        let Some(root) = fixture_root() else { return };
        let evidence = parse_fixture(&root, "sarif/trivy-alpine-310.sarif", FileKind::Sarif);
        assert_eq!(evidence.vulnerabilities.len(), 4);
        assert!(evidence.findings.is_empty());
        assert_eq!(
            evidence.severity_counts(),
            [(Severity::Medium, 4)].into_iter().collect()
        );
        let found: Vec<_> = evidence
            .vulnerabilities
            .iter()
            .map(|v| (v.id.as_str(), v.package.as_deref().unwrap()))
            .collect();
        assert_eq!(
            found,
            [
                ("CVE-2019-1549", "libcrypto1.1"),
                ("CVE-2019-1551", "libcrypto1.1"),
                ("CVE-2019-1549", "libssl1.1"),
                ("CVE-2019-1551", "libssl1.1"),
            ]
        );
        let second = &evidence.vulnerabilities[1];
        assert_eq!(second.installed_version.as_deref(), Some("1.1.1c-r0"));
        assert_eq!(
            second.fix,
            FixState::Fixed {
                version: Some("1.1.1d-r2".into())
            }
        );
    }

    #[test]
    fn fixture_misconfigurations_are_findings() {
        let Some(root) = fixture_root() else { return };
        let rel = "sarif/trivy-action-config-misconfig.sarif";
        let evidence = parse_fixture(&root, rel, FileKind::Sarif);
        assert!(evidence.vulnerabilities.is_empty());
        assert_eq!(evidence.findings.len(), 8);
        let count = |s| evidence.findings.iter().filter(|f| f.severity == s).count();
        assert_eq!(
            (
                count(Severity::High),
                count(Severity::Medium),
                count(Severity::Low)
            ),
            (5, 1, 2)
        );
        assert!(
            evidence
                .findings
                .iter()
                .all(|f| f.location.as_deref() == Some("main.tf"))
        );
        assert_eq!(evidence.findings[0].rule_id, "AWS-0086");
    }

    #[test]
    fn severity_falls_back_from_score_to_tags_to_level() {
        let evidence = parse_str(
            r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"rules":[
                {"id":"GHSA-aaaa","properties":{"security-severity":9.5}},
                {"id":"CVE-2","properties":{"tags":["security","low"]}},
                {"id":"lint-1","defaultConfiguration":{"level":"note"}}]}},
              "results":[{"ruleId":"GHSA-aaaa"},{"ruleId":"CVE-2","ruleIndex":1},
                {"ruleId":"lint-1"},{"ruleId":"lint-2","level":"error"},
                {"ruleId":"lint-3","kind":"pass"}]}]}"#,
        );
        let severities: Vec<_> = evidence
            .vulnerabilities
            .iter()
            .map(|v| v.severity)
            .collect();
        assert_eq!(severities, [Severity::Critical, Severity::Low]);
        let findings: Vec<_> = evidence.findings.iter().map(|f| f.severity).collect();
        assert_eq!(findings, [Severity::Low, Severity::High]);
        assert_eq!(evidence.notes.len(), 1, "one result was a pass");
    }

    #[test]
    fn out_of_range_rule_index_falls_back_to_id() {
        let evidence = parse_str(
            r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"rules":[
                {"id":"CVE-9","properties":{"security-severity":"7.5"}}]}},
              "results":[{"ruleId":"CVE-9","ruleIndex":99999}]}]}"#,
        );
        assert_eq!(evidence.vulnerabilities[0].severity, Severity::High);
    }
}
