//! The guest's initramfs: a static busybox, the kernel's `cpuid.ko` (the
//! cloud kernel builds `CONFIG_X86_CPUID` as a module) and an `/init`
//! script that reports what the guest sees, then reboots (`reboot=k`: the
//! VMM stops at the keyboard controller's reset command).
//!
//! Reports go to `/dev/kmsg` at KERN_CRIT, so the kernel's polled serial
//! console prints them whatever the log level (the minimal UART has no
//! interrupts, which a tty write would wait for). Every report line starts
//! with [`MARK`].

use crate::cpio::Cpio;

/// What starts every report line of the guest.
pub const MARK: &str = "E2E ";

/// The CPUID leaves `/init` reads through `/dev/cpu/0/cpuid`: (leaf, subleaf).
pub const LEAVES: [(u32, u32); 6] = [
    (0x0, 0),
    (0x1, 0),
    (0x7, 0),
    (0xa, 0),
    (0x4000_0001, 0),
    (0x8000_0001, 0),
];

/// The `/init` script.
pub fn init_script() -> String {
    let mut leaves = String::new();
    for (leaf, subleaf) in LEAVES {
        let offset = (u64::from(subleaf) << 32) | u64::from(leaf);
        leaves.push_str(&format!(
            "  r=$(dd if=/dev/cpu/$c/cpuid bs=16 count=1 skip={offset} iflag=skip_bytes 2>/dev/null | od -An -tx4)\n  say \"cpuid $c {leaf:#x} {subleaf} $r\"\n"
        ));
    }
    format!(
        r#"#!/bin/sh
export PATH=/bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() {{ echo "<2>{MARK}$*" > /dev/kmsg; }}
say "start"
insmod /cpuid.ko || say "no cpuid.ko"
say "online $(cat /sys/devices/system/cpu/online)"
say "processors $(grep -c ^processor /proc/cpuinfo)"
awk -F': ' '/^processor/ {{ p = $2 }} /^flags/ {{ n = split($2, f, " "); l = ""; for (i = 1; i <= n; i++) {{ l = l " " f[i]; if (i % 16 == 0) {{ print p l; l = "" }} }} if (l != "") print p l }}' /proc/cpuinfo |
while read line; do say "flags $line"; done
for c in $(ls /dev/cpu); do
{leaves}done
say "end"
reboot -f
"#
    )
}

/// The archive: `/bin/busybox` with `/bin/sh` and the applets `/init`
/// uses as links, `/cpuid.ko` when given, and `/init`.
pub fn build(busybox: &[u8], cpuid_ko: Option<&[u8]>) -> Vec<u8> {
    let mut c = Cpio::new();
    for d in ["bin", "dev", "proc", "sys"] {
        c.dir(d);
    }
    c.file("bin/busybox", 0o755, busybox);
    for applet in [
        "sh", "mkdir", "mount", "echo", "insmod", "cat", "grep", "awk", "dd", "od", "ls", "reboot",
    ] {
        c.symlink(&format!("bin/{applet}"), "busybox");
    }
    if let Some(ko) = cpuid_ko {
        c.file("cpuid.ko", 0o644, ko);
    }
    c.file("init", 0o755, init_script().as_bytes());
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_script_reads_every_leaf_at_its_offset() {
        let s = init_script();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("skip=2147483649 "), "leaf 0x80000001");
        assert!(s.contains("skip=10 "), "leaf 0xa");
        assert!(s.contains("reboot -f"));
    }

    #[test]
    fn the_archive_holds_init_busybox_and_the_module() {
        let a = build(b"BB", Some(b"KO"));
        let has = |name: &[u8]| a.windows(name.len()).any(|w| w == name);
        assert!(has(b"bin/busybox\0"));
        assert!(has(b"cpuid.ko\0"));
        assert!(has(b"init\0"));
        assert!(has(b"bin/sh\0"));
    }
}
