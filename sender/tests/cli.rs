//! Runs the real `sluice-send` binary: key generation, packing every
//! well-formed fixture image and a report set, inspecting the results, and
//! the refusals an operator is most likely to meet.
//!
//! Fixtures come from `../shared/fixtures` beside the repository; a clone
//! without them skips these tests with a message.

// Helpers outside `#[test]` functions unwrap too: a failure there is a
// failed test, which is what a panic reports.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-send");

fn fixtures() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    if path.exists() {
        return Some(path);
    }
    eprintln!("skipped: ../shared/fixtures not found");
    None
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn refused(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} should have failed");
    String::from_utf8(out.stderr).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for role in ["image", "report"] {
            let prefix = dir.path().join(role);
            ok(&["keygen", "--role", role, "--out", s(&prefix)]);
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn inspect_json(bundle: &Path, trust: &Path) -> Value {
    let text = ok(&["inspect", s(bundle), "--json", "--trust", s(trust)]);
    serde_json::from_str(&text).unwrap()
}

#[test]
fn keygen_writes_a_private_secret_and_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("pipeline");
    let stdout = ok(&[
        "keygen",
        "--role",
        "image",
        "--out",
        s(&prefix),
        "--comment",
        "ci",
    ]);
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path().join("pipeline.key")), 0o600);
    assert_eq!(mode(dir.path().join("pipeline.pub")) & 0o600, 0o600);
    let public = fs::read_to_string(dir.path().join("pipeline.pub")).unwrap();
    let key_id = stdout.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert!(
        public.contains(&format!("key_id = \"{key_id}\"")),
        "{public}"
    );
    assert!(public.contains("role = \"image\""));
    assert!(!public.contains("secret_key"));

    let again = refused(&["keygen", "--role", "image", "--out", s(&prefix)]);
    assert!(again.contains("--force"), "{again}");
    ok(&["keygen", "--role", "image", "--out", s(&prefix), "--force"]);
    let replaced = fs::read_to_string(dir.path().join("pipeline.pub")).unwrap();
    assert_ne!(replaced, public);
}

#[test]
fn every_well_formed_fixture_image_packs_and_inspects() {
    let Some(fixtures) = fixtures() else { return };
    let images = fixtures.join("images");
    let keys = Keys::new();
    let key = keys.path("image.key");
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "docker-archive/busybox-1.35.0.docker.tar",
            None,
            "docker-archive",
        ),
        (
            "docker-archive/cimage-almostempty.tar",
            None,
            "docker-archive",
        ),
        (
            "docker-archive/gcr-empty-layer-history.tar",
            None,
            "docker-archive",
        ),
        (
            "docker-archive/gcr-hello-world-docker25.tar",
            None,
            "docker-archive",
        ),
        (
            "docker-archive/gcr-test-bundle-two-images.tar",
            Some("test_image_2"),
            "docker-archive",
        ),
        (
            "docker-archive/gcr-test-link-symlinked-layer.tar",
            Some("bazel/v1/tarball:test_image_3"),
            "docker-archive",
        ),
        (
            "docker-archive/gcr-whiteout-image.tar",
            None,
            "docker-archive",
        ),
        (
            "docker-archive/grype-anchore-fixture-image-simple.tar",
            None,
            "docker-archive",
        ),
        (
            "oci-archive/busybox-1.35.0-zstd.oci.tar",
            None,
            "oci-archive",
        ),
        (
            "oci-layout/busybox-oci",
            Some("1.35.0-layered"),
            "oci-layout",
        ),
        (
            "oci-layout/cimage-multi-arch-multi-tag",
            Some("latest"),
            "oci-layout",
        ),
        (
            "oci-layout/cimage-two-identical-references",
            Some("sha256:49d1584496c6e196f512c4a9f52b17b187642269d84c044538523c5b69a660b3"),
            "oci-layout",
        ),
        ("oci-layout/gcr-test-gc-index", Some("3"), "oci-layout"),
        ("oci-layout/gcr-test-index", Some("4"), "oci-layout"),
        ("oci-layout/gcr-test-index-media-type", None, "oci-layout"),
        ("oci-layout/regclient-testrepo", Some("v3"), "oci-layout"),
        (
            "oci-layout/slsa-cosign-save-v1.10.0",
            Some("sha256:e0a0a765d690a5104331cfbac88ebbbf01736c1f87aaa3cd455c516a5ea586a5"),
            "oci-layout",
        ),
    ];
    for (index, (rel, reference, format)) in cases.iter().enumerate() {
        let input = images.join(rel);
        let bundle = keys.path(&format!("image-{index}.bundle"));
        let mut args = vec!["pack", "image", "--key", s(&key)];
        args.extend([s(&input), "-o", s(&bundle)]);
        if let Some(reference) = reference {
            args.extend(["--ref", reference]);
        }
        let summary = ok(&args);
        assert!(
            summary.starts_with("packed image bundle "),
            "{rel}: {summary}"
        );

        let mut inspect = vec!["inspect", s(&input), "--json"];
        inspect.extend(reference.iter().flat_map(|r| ["--ref", r]));
        let image: Value = serde_json::from_str(&ok(&inspect)).unwrap();
        assert_eq!(image["format"], *format, "{rel}");
        let shown = inspect_json(&bundle, &keys.path("image.pub"));
        assert_eq!(shown["image_format"], *format, "{rel}");
        assert_eq!(shown["subject"], image["subject"], "{rel}");
        assert_eq!(shown["signature"], "verified", "{rel}");
        assert_eq!(shown["payload_matches"], true, "{rel}");
        assert!(shown["files"].as_array().unwrap().len() >= 2, "{rel}");
        if input.is_file() {
            assert_payload_is_the_input(&bundle, &input, &shown);
        }
    }
}

/// For tar inputs the payload, decompressed, is the input byte for byte.
fn assert_payload_is_the_input(bundle: &Path, input: &Path, shown: &Value) {
    let bytes = fs::read(bundle).unwrap();
    let payload_len = shown["payload_length"].as_u64().unwrap() as usize;
    let payload = &bytes[bytes.len() - payload_len..];
    let tar = zstd::decode_all(payload).unwrap();
    assert_eq!(tar, fs::read(input).unwrap(), "{}", input.display());
}

#[test]
fn inspecting_an_image_shows_its_subject_and_blobs() {
    let Some(fixtures) = fixtures() else { return };
    let input = fixtures.join("images/oci-archive/busybox-1.35.0-zstd.oci.tar");
    let shown: Value = serde_json::from_str(&ok(&["inspect", s(&input), "--json"])).unwrap();
    assert_eq!(shown["format"], "oci-archive");
    assert_eq!(
        shown["subject"],
        "sha256:ffc196c4b14c278df3511b54c313b2b31ad3da3e6c79b895af8efc9bf24f7933"
    );
    assert_eq!(shown["refs"], serde_json::json!(["1.35.0"]));
    let sizes: Vec<u64> = shown["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [348, 477, 1_093_162]);
    let text = ok(&["inspect", s(&input)]);
    assert!(text.contains("format     oci-archive"), "{text}");
}

#[test]
fn a_report_set_packs_with_each_kind_recognised() {
    let Some(fixtures) = fixtures() else { return };
    let reports = fixtures.join("reports");
    let keys = Keys::new();
    let files = [
        "cyclonedx/trivy-centos-7.cdx.json",
        "spdx/trivy-centos-7.spdx.json",
        "trivy/trivy-centos-7.json",
        "grype/grype-image.json",
        "sarif/trivy-alpine-310.sarif",
        "junit/trivy-alpine-310.junit.xml",
        "intoto-slsa/trivy-centos-7-cyclonedx.intoto.jsonl",
        "sigstore/sigstore-go-dsse.sigstore.json",
        "intoto-slsa/gcb-v0.3-container-provenance.digest",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| reports.join(f)).collect();
    let bundle = keys.path("reports.bundle");
    let subject = "sha256:f472ca4b68898c951ac3b476cba919d0d56fca4ced631fabcead51e4b2b690e7";
    let key = keys.path("report.key");
    let mut args = vec!["pack", "report", "--key", s(&key)];
    args.extend(["--subject", subject, "-o", s(&bundle)]);
    args.extend(paths.iter().map(|p| s(p)));
    let summary = ok(&args);
    assert!(summary.contains("report bundle"), "{summary}");

    let shown = inspect_json(&bundle, keys.dir.path());
    assert_eq!(shown["kind"], "report");
    assert_eq!(shown["subject"], subject);
    assert_eq!(shown["signature"], "verified");
    let kinds: Vec<(String, String)> = shown["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("gcb-v0.3-container-provenance.digest", "unknown"),
        ("grype-image.json", "grype"),
        ("sigstore-go-dsse.sigstore.json", "sigstore-bundle"),
        ("trivy-alpine-310.junit.xml", "junit"),
        ("trivy-alpine-310.sarif", "sarif"),
        ("trivy-centos-7-cyclonedx.intoto.jsonl", "dsse"),
        ("trivy-centos-7.cdx.json", "cyclonedx"),
        ("trivy-centos-7.json", "trivy"),
        ("trivy-centos-7.spdx.json", "spdx"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, k)| (p.to_string(), k.to_string()))
        .collect();
    assert_eq!(kinds, expected);
}

#[test]
fn the_null_manifest_archive_is_refused_clearly() {
    let Some(fixtures) = fixtures() else { return };
    let keys = Keys::new();
    let input = fixtures.join("images/docker-archive/gcr-null-manifest.tar");
    let out = keys.path("null.bundle");
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&keys.path("image.key")),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert!(err.contains("manifest.json is `null`"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_file_that_is_not_an_image_is_refused() {
    let Some(fixtures) = fixtures() else { return };
    let keys = Keys::new();
    let input = fixtures.join("reports/trivy/trivy-centos-7.json");
    let out = keys.path("x.bundle");
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&keys.path("image.key")),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert!(
        err.contains("not a readable tar archive") || err.contains("is not an image"),
        "{err}"
    );
    let traversal = fixtures.join("hostile/tar-traversal/jwilk-relative0.tar");
    let err = refused(&["inspect", s(&traversal)]);
    assert!(err.contains("unsafe path"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_layout_with_a_deleted_blob_is_refused() {
    let Some(fixtures) = fixtures() else { return };
    let keys = Keys::new();
    let layout = keys.path("layout");
    copy_dir(
        &fixtures.join("images/oci-layout/gcr-test-index-media-type"),
        &layout,
    );
    let blob = "blobs/sha256/b544f71ecd82372bc9a3c0dbef378abfd2734fe437df81ff6e242a0d720d8e3e";
    fs::remove_file(layout.join(blob)).unwrap();
    let out = keys.path("missing.bundle");
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&keys.path("image.key")),
        s(&layout),
        "-o",
        s(&out),
    ]);
    assert!(
        err.contains("blob sha256:b544f71e") && err.contains("missing"),
        "{err}"
    );
    assert!(!out.exists());
    let left: Vec<_> = fs::read_dir(keys.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with(".sluice-")),
        "{left:?}"
    );
}

#[test]
fn a_size_mismatch_in_a_layout_is_refused() {
    let Some(fixtures) = fixtures() else { return };
    let keys = Keys::new();
    let input = fixtures.join("images/oci-layout/cimage-multi-arch-multi-tag");
    let out = keys.path("bad.bundle");
    let key = keys.path("image.key");
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&key),
        s(&input),
        "-o",
        s(&out),
        "--ref",
        "1.0.0",
    ]);
    assert!(
        err.contains("is 584 bytes but its descriptor says 585"),
        "{err}"
    );
    let err = refused(&["pack", "image", "--key", s(&key), s(&input), "-o", s(&out)]);
    assert!(
        err.contains("choose one with --ref") && err.contains("3.18.3"),
        "{err}"
    );
}

#[test]
fn unusable_keys_are_refused() {
    let Some(fixtures) = fixtures() else { return };
    let keys = Keys::new();
    let input = fixtures.join("images/docker-archive/cimage-almostempty.tar");
    let out = keys.path("k.bundle");

    let garbage = keys.path("garbage.key");
    fs::write(&garbage, "this is not a key").unwrap();
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&garbage),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert!(
        err.contains("garbage.key") && err.contains("not a Sluice key file"),
        "{err}"
    );

    let missing = keys.path("missing.key");
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&missing),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert!(err.contains("missing.key"), "{err}");

    let public = keys.path("image.pub");
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&public),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert!(err.contains("image.pub"), "{err}");

    let report_key = keys.path("report.key");
    let err = refused(&[
        "pack",
        "image",
        "--key",
        s(&report_key),
        s(&input),
        "-o",
        s(&out),
    ]);
    assert!(
        err.contains("a report key may not sign a image bundle"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_bundle_checked_against_the_wrong_key_is_not_verified() {
    let Some(fixtures) = fixtures() else { return };
    let keys = Keys::new();
    let input = fixtures.join("images/docker-archive/cimage-almostempty.tar");
    let bundle = keys.path("b.bundle");
    ok(&[
        "pack",
        "image",
        "--key",
        s(&keys.path("image.key")),
        s(&input),
        "-o",
        s(&bundle),
    ]);
    let err = refused(&[
        "inspect",
        s(&bundle),
        "--trust",
        s(&keys.path("report.pub")),
    ]);
    assert!(err.contains("not verified"), "{err}");

    let mut bytes = fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&bundle, &bytes).unwrap();
    let err = refused(&["inspect", s(&bundle)]);
    assert!(err.contains("does not match its manifest"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}
