//! The uncompressed kernel (`vmlinux`) from a distribution's bzImage,
//! like the kernel tree's `scripts/extract-vmlinux`: the setup header
//! names the compressed payload; Debian's cloud kernel compresses it with
//! LZ4 in the legacy frame format. The VMM boots the ELF through its PVH
//! entry rather than the bzImage's own decompressor, which a software KVM
//! runs at emulation speed (docs/real-guest.md, "Timing").

/// The legacy LZ4 frame's magic.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// The largest block a legacy LZ4 frame has, uncompressed.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// Why a kernel could not be extracted.
#[derive(Debug, PartialEq, Eq)]
pub enum ExtractError {
    /// Not a bzImage (no `HdrS` at 0x202).
    NotBzImage,
    /// The payload is not LZ4 (its first bytes are given).
    Compression([u8; 4]),
    /// An LZ4 block did not decompress.
    Lz4(String),
    /// The result is not an ELF file.
    NotElf,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

/// The vmlinux ELF inside `bzimage`.
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>, ExtractError> {
    if bzimage.get(0x202..0x206) != Some(b"HdrS") {
        return Err(ExtractError::NotBzImage);
    }
    let setup_sects = usize::from(*bzimage.get(0x1f1).ok_or(ExtractError::NotBzImage)?);
    let setup_sects = if setup_sects == 0 { 4 } else { setup_sects };
    let offset = u32_at(bzimage, 0x248).ok_or(ExtractError::NotBzImage)? as usize;
    let length = u32_at(bzimage, 0x24c).ok_or(ExtractError::NotBzImage)? as usize;
    let start = (setup_sects + 1) * 512 + offset;
    let payload = bzimage
        .get(start..start + length)
        .ok_or(ExtractError::NotBzImage)?;
    let head: [u8; 4] = payload
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(ExtractError::NotBzImage)?;
    if u32::from_le_bytes(head) != LZ4_LEGACY_MAGIC {
        return Err(ExtractError::Compression(head));
    }
    let out = lz4_legacy(payload)?;
    if out.get(..4) != Some(b"\x7fELF") {
        return Err(ExtractError::NotElf);
    }
    Ok(out)
}

/// Decompresses a legacy LZ4 frame: the magic, then blocks of a 32-bit
/// compressed size and the data, until the input ends or a size does not
/// fit (the kernel appends the uncompressed size).
fn lz4_legacy(frame: &[u8]) -> Result<Vec<u8>, ExtractError> {
    let mut out = Vec::new();
    let mut at = 4;
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    while let Some(size) = u32_at(frame, at) {
        if size == LZ4_LEGACY_MAGIC {
            at += 4;
            continue;
        }
        let Some(data) = frame.get(at + 4..at + 4 + size as usize) else {
            break;
        };
        let n = lz4_flex::block::decompress_into(data, &mut block)
            .map_err(|e| ExtractError::Lz4(format!("block at {at:#x}: {e}")))?;
        out.extend_from_slice(&block[..n]);
        at += 4 + size as usize;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bzimage_with(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 5 * 512];
        b[0x1f1] = 4;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn a_legacy_lz4_payload_is_extracted() {
        let elf = [b"\x7fELF".as_slice(), &[7u8; 1000]].concat();
        let block = lz4_flex::block::compress(&elf);
        let mut payload = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        payload.extend_from_slice(&(block.len() as u32).to_le_bytes());
        payload.extend_from_slice(&block);
        payload.extend_from_slice(&(elf.len() as u32).to_le_bytes()); // trailer
        assert_eq!(extract_vmlinux(&bzimage_with(&payload)), Ok(elf));
    }

    #[test]
    fn other_compressions_and_non_kernels_are_refused() {
        assert_eq!(extract_vmlinux(&[0; 4096]), Err(ExtractError::NotBzImage));
        assert_eq!(
            extract_vmlinux(&bzimage_with(&[0x28, 0xb5, 0x2f, 0xfd, 0])),
            Err(ExtractError::Compression([0x28, 0xb5, 0x2f, 0xfd]))
        );
    }
}
