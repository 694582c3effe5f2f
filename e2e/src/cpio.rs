//! A writer for the `newc` cpio format (the one the kernel unpacks as an
//! initramfs, `Documentation/driver-api/early-userspace/buffer-format.rst`).

/// Regular file mode bits.
pub const S_IFREG: u32 = 0o100_000;
/// Directory mode bits.
pub const S_IFDIR: u32 = 0o040_000;
/// Symbolic link mode bits.
pub const S_IFLNK: u32 = 0o120_000;

/// A cpio `newc` archive being built in memory.
#[derive(Debug, Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// An empty archive.
    pub fn new() -> Cpio {
        Cpio::default()
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str) {
        self.entry(path, S_IFDIR | 0o755, &[]);
    }

    /// Adds a regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | (perm & 0o7777), data);
    }

    /// Adds a symbolic link `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, target.as_bytes());
    }

    /// Ends the archive (the `TRAILER!!!` entry) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, 0);
        self.out
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let ino = self.ino;
        self.header(path, mode, ino, data.len());
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, name: &str, mode: u32, ino: u32, size: usize) {
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(size).unwrap_or(u32::MAX),
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    /// Pads to a 4-byte boundary (headers and data are 4-byte aligned).
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_entry_has_the_newc_layout() {
        let mut c = Cpio::new();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let a = c.finish();
        assert_eq!(&a[..6], b"070701");
        // ino 1, mode 0100755, ..., filesize 10, ..., namesize 5
        let h = std::str::from_utf8(&a[6..110]).unwrap();
        assert_eq!(&h[0..8], "00000001");
        assert_eq!(&h[8..16], "000081ED");
        assert_eq!(&h[48..56], "0000000A");
        assert_eq!(&h[88..96], "00000005");
        // name at 110, NUL, padded to 116; data at 116..126, padded to 128.
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        assert_eq!(&a[128..134], b"070701");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(a.len() % 4, 0);
    }
}
