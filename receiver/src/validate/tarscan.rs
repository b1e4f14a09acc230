//! Bounded, strict iteration over a tar stream, shared by the payload tar
//! and the layer tars inside it.
//!
//! tar-rs runs in raw mode, so every GNU long name, long link and PAX
//! header passes through here: each is size-capped before it is read, its
//! records are parsed strictly, and any sequence two readers could
//! interpret differently (two long names for one member, a PAX path *and* a
//! GNU long name, a PAX size that disagrees with the header, an extension
//! header with no member after it) is refused. Member data is handed to the
//! caller as a stream and counted, so a member cut short by the end of the
//! stream is caught. After the end-of-archive block, everything left in the
//! stream must be zero padding.
//!
//! Nothing here touches the filesystem; there is no unpacking.

use std::io::{self, Read};

use tar::{EntryType, Header};

/// Longest GNU long name or long link accepted, in bytes.
const MAX_LONG_NAME: u64 = 8 << 10;
/// Largest PAX extended header accepted, in bytes.
const MAX_PAX: u64 = 1 << 20;

/// What a caller allows in its stream.
#[derive(Clone, Copy, Debug)]
pub(super) struct TarRules {
    /// Most members (not counting extension headers).
    pub max_members: u64,
    /// Whether PAX global headers may appear; they are checked and skipped.
    pub allow_global_headers: bool,
}

/// One member, with long names and PAX records already applied.
#[derive(Debug)]
pub(super) struct Member {
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub kind: EntryType,
    pub size: u64,
    pub mode: u32,
    pub device: Option<(u32, u32)>,
}

/// Why a tar stream was refused; the text is built here, not taken from
/// the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TarFault(pub String);

/// Calls `visit` for each member with a reader over its data, then checks
/// the end-of-archive padding. Returns the underlying reader, drained.
pub(super) fn walk<R, E, F>(reader: R, rules: TarRules, mut visit: F) -> Result<R, E>
where
    R: Read,
    E: From<TarFault>,
    F: FnMut(&Member, &mut dyn Read) -> Result<(), E>,
{
    let mut archive = tar::Archive::new(reader);
    let mut pending = Extensions::default();
    let mut members = 0u64;
    for entry in archive.entries().map_err(io_fault)?.raw(true) {
        let mut entry = entry.map_err(io_fault)?;
        match entry.header().entry_type() {
            EntryType::GNULongName => {
                pending.long_name(read_extension(&mut entry, MAX_LONG_NAME)?)?
            }
            EntryType::GNULongLink => {
                pending.long_link(read_extension(&mut entry, MAX_LONG_NAME)?)?
            }
            EntryType::XHeader => pending.pax(&read_extension(&mut entry, MAX_PAX)?)?,
            EntryType::XGlobalHeader if rules.allow_global_headers => {
                check_global(&read_extension(&mut entry, MAX_PAX)?)?
            }
            _ => {
                members += 1;
                if members > rules.max_members {
                    let max = rules.max_members;
                    return Err(fault(format!("more than {max} members")).into());
                }
                let extensions = std::mem::take(&mut pending);
                visit_member(&mut entry, extensions, &mut visit)?;
            }
        }
    }
    if !pending.is_empty() {
        return Err(fault("an extension header at the end describes no member").into());
    }
    let mut reader = archive.into_inner();
    check_padding(&mut reader)?;
    Ok(reader)
}

fn visit_member<R, E, F>(
    entry: &mut tar::Entry<'_, R>,
    extensions: Extensions,
    visit: &mut F,
) -> Result<(), E>
where
    R: Read,
    E: From<TarFault>,
    F: FnMut(&Member, &mut dyn Read) -> Result<(), E>,
{
    let member = extensions.apply(entry.header())?;
    let mut data = Counted {
        inner: entry,
        count: 0,
    };
    visit(&member, &mut data)?;
    io::copy(&mut data, &mut io::sink()).map_err(io_fault)?;
    if data.count != member.size {
        return Err(fault("the stream ends inside a member's data").into());
    }
    Ok(())
}

/// Extension headers waiting for the member they describe.
#[derive(Debug, Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Pax>,
}

/// The PAX records that matter for where data starts and what it is.
#[derive(Debug, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Extensions {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && self.pax.is_none()
    }

    fn long_name(&mut self, bytes: Vec<u8>) -> Result<(), TarFault> {
        if self.long_name.is_some() {
            return Err(fault("two GNU long names describe one member"));
        }
        self.long_name = Some(c_string(bytes)?);
        Ok(())
    }

    fn long_link(&mut self, bytes: Vec<u8>) -> Result<(), TarFault> {
        if self.long_link.is_some() {
            return Err(fault("two GNU long links describe one member"));
        }
        self.long_link = Some(c_string(bytes)?);
        Ok(())
    }

    fn pax(&mut self, bytes: &[u8]) -> Result<(), TarFault> {
        if self.pax.is_some() {
            return Err(fault("two PAX headers describe one member"));
        }
        self.pax = Some(parse_pax(bytes)?);
        Ok(())
    }

    fn apply(self, header: &Header) -> Result<Member, TarFault> {
        let pax = self.pax.unwrap_or_default();
        let size = header.entry_size().map_err(io_fault)?;
        // Limitation: a member whose real size lives only in a PAX record
        // (8 GiB and more, PAX format) is refused, because tar-rs's raw mode
        // would step by the header's size and read the stream differently.
        if pax.size.is_some_and(|pax_size| pax_size != size) {
            return Err(fault("a PAX size disagrees with the header size"));
        }
        let path = pick(pax.path, self.long_name, "path")?;
        let path = path.unwrap_or_else(|| header.path_bytes().into_owned());
        let link = pick(pax.link, self.long_link, "link name")?;
        let link = link.or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
        let kind = header.entry_type();
        Ok(Member {
            path,
            link,
            kind,
            size,
            mode: header.mode().map_err(io_fault)?,
            device: device(header, kind)?,
        })
    }
}

/// A PAX value and a GNU long form for the same field are ambiguous.
fn pick(
    pax: Option<Vec<u8>>,
    gnu: Option<Vec<u8>>,
    what: &str,
) -> Result<Option<Vec<u8>>, TarFault> {
    match (pax, gnu) {
        (Some(_), Some(_)) => Err(fault(format!("both a PAX and a GNU long {what}"))),
        (pax, gnu) => Ok(pax.or(gnu)),
    }
}

fn device(header: &Header, kind: EntryType) -> Result<Option<(u32, u32)>, TarFault> {
    if !matches!(kind, EntryType::Char | EntryType::Block) {
        return Ok(None);
    }
    let major = header.device_major().map_err(io_fault)?.unwrap_or(0);
    let minor = header.device_minor().map_err(io_fault)?.unwrap_or(0);
    Ok(Some((major, minor)))
}

/// A GNU long name is a C string: one trailing NUL, none inside.
fn c_string(mut bytes: Vec<u8>) -> Result<Vec<u8>, TarFault> {
    if bytes.last() == Some(&0) {
        bytes.pop();
    }
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(fault("a GNU long name is empty or holds a NUL"));
    }
    Ok(bytes)
}

/// Parses PAX records (`"<len> <key>=<value>\n"`, POSIX pax "extended
/// header") strictly: every length must be exact and every record complete.
fn parse_pax(mut rest: &[u8]) -> Result<Pax, TarFault> {
    let mut pax = Pax::default();
    while !rest.is_empty() {
        let (key, value, tail) = pax_record(rest)?;
        apply_pax(&mut pax, key, value)?;
        rest = tail;
    }
    Ok(pax)
}

/// One PAX record split as (key, value, rest of the header).
type PaxRecord<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn pax_record(bytes: &[u8]) -> Result<PaxRecord<'_>, TarFault> {
    let bad = || fault("a malformed PAX record");
    let space = bytes
        .iter()
        .take(21)
        .position(|b| *b == b' ')
        .ok_or_else(bad)?;
    let len = decimal(&bytes[..space]).ok_or_else(bad)?;
    let len = usize::try_from(len).map_err(|_| bad())?;
    if len <= space + 1 || len > bytes.len() || bytes[len - 1] != b'\n' {
        return Err(bad());
    }
    let body = &bytes[space + 1..len - 1];
    let equals = body.iter().position(|b| *b == b'=').ok_or_else(bad)?;
    Ok((&body[..equals], &body[equals + 1..], &bytes[len..]))
}

fn apply_pax(pax: &mut Pax, key: &[u8], value: &[u8]) -> Result<(), TarFault> {
    if key.starts_with(b"GNU.sparse.") {
        return Err(fault("PAX sparse-file records are not supported"));
    }
    let slot = match key {
        b"path" => &mut pax.path,
        b"linkpath" => &mut pax.link,
        b"size" => {
            let size = decimal(value).ok_or_else(|| fault("a PAX size is not a number"))?;
            if pax.size.replace(size).is_some() {
                return Err(fault("a PAX header repeats `size`"));
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if value.is_empty() || value.contains(&0) {
        return Err(fault("a PAX path or link path is empty or holds a NUL"));
    }
    if slot.replace(value.to_vec()).is_some() {
        return Err(fault("a PAX header repeats a path"));
    }
    Ok(())
}

/// A global header may not redefine where members live or how big they are.
fn check_global(bytes: &[u8]) -> Result<(), TarFault> {
    let pax = parse_pax(bytes)?;
    if pax.path.is_some() || pax.link.is_some() || pax.size.is_some() {
        return Err(fault("a PAX global header sets a path or size"));
    }
    Ok(())
}

/// Unsigned decimal, digits only, no sign, no overflow.
fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, b| {
        let digit = char::from(*b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn read_extension<R: Read>(entry: &mut tar::Entry<'_, R>, max: u64) -> Result<Vec<u8>, TarFault> {
    let size = entry.header().entry_size().map_err(io_fault)?;
    if size > max {
        return Err(fault(format!(
            "an extension header of {size} bytes (most allowed: {max})"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(max).read_to_end(&mut bytes).map_err(io_fault)?;
    if bytes.len() as u64 != size {
        return Err(fault("the stream ends inside an extension header"));
    }
    Ok(bytes)
}

/// Everything after the end-of-archive block must be zero padding, so no
/// bytes hide where no reader looks.
fn check_padding<R: Read>(reader: &mut R) -> Result<(), TarFault> {
    let mut buf = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fault(e)),
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(fault("data after the end-of-archive marker"));
        }
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

pub(super) fn fault(reason: impl Into<String>) -> TarFault {
    TarFault(reason.into())
}

pub(super) fn io_fault(error: io::Error) -> TarFault {
    // tar-rs and the decompressors describe their own errors; the text is
    // theirs, never input bytes.
    TarFault(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: TarRules = TarRules {
        max_members: 100,
        allow_global_headers: false,
    };

    fn header(kind: EntryType, name: &[u8], size: u64) -> [u8; 512] {
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        *header.as_bytes()
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        out.resize(data.len().div_ceil(512) * 512, 0);
        out
    }

    fn archive(parts: &[(EntryType, &[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, name, data) in parts {
            out.extend_from_slice(&header(*kind, name, data.len() as u64));
            out.extend_from_slice(&padded(data));
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    fn names(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, TarFault> {
        let mut seen = Vec::new();
        walk(bytes, RULES, |member, data| {
            let mut content = Vec::new();
            data.read_to_end(&mut content).map_err(io_fault)?;
            seen.push((String::from_utf8_lossy(&member.path).into_owned(), content));
            Ok::<(), TarFault>(())
        })?;
        Ok(seen)
    }

    #[test]
    fn plain_members_stream_with_their_data() {
        let bytes = archive(&[(EntryType::Regular, b"a.txt", b"hello")]);
        assert_eq!(
            names(&bytes).unwrap(),
            [("a.txt".into(), b"hello".to_vec())]
        );
    }

    #[test]
    fn pax_and_gnu_long_names_apply_to_the_next_member() {
        let pax = b"18 path=long/name\n";
        let bytes = archive(&[
            (EntryType::XHeader, b"pax", pax),
            (EntryType::Regular, b"short", b"x"),
        ]);
        assert_eq!(names(&bytes).unwrap()[0].0, "long/name");
        let bytes = archive(&[
            (EntryType::GNULongName, b"././@LongLink", b"gnu/long\0"),
            (EntryType::Regular, b"short", b"x"),
        ]);
        assert_eq!(names(&bytes).unwrap()[0].0, "gnu/long");
    }

    #[test]
    fn ambiguous_extension_sequences_are_refused() {
        let two_names = archive(&[
            (EntryType::GNULongName, b"L", b"one\0"),
            (EntryType::GNULongName, b"L", b"two\0"),
            (EntryType::Regular, b"short", b"x"),
        ]);
        let err = names(&two_names).unwrap_err();
        assert_eq!(err, fault("two GNU long names describe one member"));
        let both = archive(&[
            (EntryType::GNULongName, b"L", b"one\0"),
            (EntryType::XHeader, b"pax", b"12 path=two\n"),
            (EntryType::Regular, b"short", b"x"),
        ]);
        assert_eq!(
            names(&both).unwrap_err(),
            fault("both a PAX and a GNU long path")
        );
        let dangling = archive(&[(EntryType::GNULongName, b"L", b"one\0")]);
        assert!(names(&dangling).is_err());
    }

    #[test]
    fn malformed_pax_records_are_refused() {
        for record in [
            &b"99 path=x\n"[..],
            b"8 path=x\n",
            b"12 pathx\n\n\n",
            b"11 size=1x\n",
            b"30 GNU.sparse.major=1\n\n\n\n\n\n\n\n\n",
        ] {
            let bytes = archive(&[
                (EntryType::XHeader, b"pax", record),
                (EntryType::Regular, b"short", b"x"),
            ]);
            assert!(names(&bytes).is_err(), "{record:?}");
        }
    }

    #[test]
    fn a_pax_size_that_disagrees_with_the_header_is_refused() {
        let bytes = archive(&[
            (EntryType::XHeader, b"pax", b"11 size=99\n"),
            (EntryType::Regular, b"short", b"x"),
        ]);
        assert_eq!(
            names(&bytes).unwrap_err(),
            fault("a PAX size disagrees with the header size")
        );
    }

    #[test]
    fn truncation_and_trailing_bytes_are_refused() {
        let mut cut = header(EntryType::Regular, b"big", 4096).to_vec();
        cut.extend_from_slice(&[7; 100]);
        assert!(names(&cut).is_err());
        let mut trailing = archive(&[(EntryType::Regular, b"a", b"x")]);
        trailing.extend_from_slice(b"hidden");
        assert_eq!(
            names(&trailing).unwrap_err(),
            fault("data after the end-of-archive marker")
        );
    }

    #[test]
    fn oversized_extension_headers_are_refused_before_reading() {
        let mut bytes = header(EntryType::GNULongName, b"L", 1 << 40).to_vec();
        bytes.extend_from_slice(&[b'a'; 512]);
        let err = names(&bytes).unwrap_err();
        assert!(
            err.0.contains("extension header of 1099511627776 bytes"),
            "{err:?}"
        );
    }

    #[test]
    fn hostile_tar_fixtures_never_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/hostile/tar-edge");
        let Ok(listing) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: ../shared/fixtures not found");
            return;
        };
        for file in listing {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            let _ = names(&bytes);
        }
    }
}
