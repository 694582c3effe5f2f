//! Reading the policy digest a built image carries: the 40-byte record
//! `pvgate-image` places in the section `.pvgate_policy_digest` (symbol
//! `pvgate_policy_digest_record`): the magic `PVGATE\x01\0`, then the
//! 32-byte digest (docs/image.md). The file is a static library (an `ar`
//! archive, whose members are searched) or one object or executable file;
//! ELF, Mach-O and COFF objects are read with the `object` crate.

use std::path::Path;

use object::read::archive::ArchiveFile;
use object::{Object, ObjectSection};

/// The section that holds the record (`pvgate_image::DIGEST_SECTION`).
pub const SECTION: &str = ".pvgate_policy_digest";
/// The record's magic (`pvgate_image::DIGEST_MAGIC`): layout version 1.
pub const MAGIC: [u8; 8] = *b"PVGATE\x01\0";
/// The record's size: magic and digest.
const RECORD_LEN: usize = 40;

/// Why no digest could be read from an image file.
#[derive(Debug)]
pub enum ImageError {
    /// The file could not be read.
    Io(std::io::Error),
    /// Neither an `ar` archive nor an object file `object` can parse.
    NotAnImage(String),
    /// No member holds the section `.pvgate_policy_digest`.
    NoRecord,
    /// The section holds something other than one version-1 record.
    BadRecord(String),
    /// Two members hold different digests.
    Conflicting,
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Io(e) => write!(f, "cannot read it: {e}"),
            ImageError::NotAnImage(e) => {
                write!(f, "it is neither a static library nor an object file ({e})")
            }
            ImageError::NoRecord => write!(
                f,
                "it holds no section `{SECTION}` (not a pvgate image, or built before the digest record)"
            ),
            ImageError::BadRecord(why) => write!(f, "its section `{SECTION}` {why}"),
            ImageError::Conflicting => {
                write!(f, "two of its members hold different `{SECTION}` digests")
            }
        }
    }
}

/// The policy digest embedded in the image file at `path`.
pub fn digest(path: &Path) -> Result<[u8; 32], ImageError> {
    let data = std::fs::read(path).map_err(ImageError::Io)?;
    digest_of(&data)
}

/// The policy digest embedded in `data` (an archive or an object file).
pub fn digest_of(data: &[u8]) -> Result<[u8; 32], ImageError> {
    let mut found: Option<[u8; 32]> = None;
    match ArchiveFile::parse(data) {
        Ok(archive) => {
            for member in archive.members() {
                let member = member.map_err(|e| ImageError::NotAnImage(e.to_string()))?;
                let bytes = member
                    .data(data)
                    .map_err(|e| ImageError::NotAnImage(e.to_string()))?;
                // Members that are not objects (a symbol table, a
                // `lib.rmeta`) hold no record.
                let Ok(file) = object::File::parse(bytes) else {
                    continue;
                };
                merge(&mut found, record_in(&file)?)?;
            }
        }
        Err(archive_error) => {
            let file = object::File::parse(data)
                .map_err(|e| ImageError::NotAnImage(format!("{archive_error}; {e}")))?;
            merge(&mut found, record_in(&file)?)?;
        }
    }
    found.ok_or(ImageError::NoRecord)
}

/// Adds one member's digest to what was found; members must agree.
fn merge(found: &mut Option<[u8; 32]>, next: Option<[u8; 32]>) -> Result<(), ImageError> {
    match (*found, next) {
        (_, None) => Ok(()),
        (None, Some(d)) => {
            *found = Some(d);
            Ok(())
        }
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(_), Some(_)) => Err(ImageError::Conflicting),
    }
}

/// The record in one object file's `.pvgate_policy_digest`, if it has one.
fn record_in(file: &object::File<'_>) -> Result<Option<[u8; 32]>, ImageError> {
    let Some(section) = file.section_by_name(SECTION) else {
        return Ok(None);
    };
    let bytes = section
        .data()
        .map_err(|e| ImageError::BadRecord(format!("cannot be read ({e})")))?;
    parse_record(bytes).map(Some)
}

/// Parses the 40-byte record.
fn parse_record(bytes: &[u8]) -> Result<[u8; 32], ImageError> {
    if bytes.len() != RECORD_LEN {
        return Err(ImageError::BadRecord(format!(
            "is {} bytes, not the {RECORD_LEN} of a digest record",
            bytes.len()
        )));
    }
    let (magic, digest) = bytes.split_at(8);
    if magic != MAGIC {
        return Err(ImageError::BadRecord(format!(
            "does not start with the magic `PVGATE\\x01\\0` (found {magic:02x?})"
        )));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_the_magic_then_32_bytes() {
        let mut rec = MAGIC.to_vec();
        rec.extend(0u8..32);
        let d = parse_record(&rec).unwrap_or_default();
        assert_eq!(d[31], 31);
        rec[6] = 2;
        assert!(matches!(parse_record(&rec), Err(ImageError::BadRecord(_))));
        assert!(matches!(
            parse_record(&rec[..39]),
            Err(ImageError::BadRecord(_))
        ));
    }

    #[test]
    fn text_is_no_image() {
        assert!(matches!(
            digest_of(b"not an archive"),
            Err(ImageError::NotAnImage(_))
        ));
    }
}
