//! The guest's memory and the Linux 32-bit boot protocol
//! (`Documentation/arch/x86/boot.rst`): the bzImage's protected-mode part
//! at 1 MiB (linux-loader), the zero page, the command line, the
//! initramfs at the top of memory, the ACPI tables, and a GDT with the
//! boot protocol's flat `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18), the
//! layout of crosvm's protected-VM trace (`tests/data/traces/crosvm-boot-pvm.toml`).

use std::fs::File;

use linux_loader::loader::{Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::acpi;

/// Guest RAM size.
pub const MEM_SIZE: u64 = 256 << 20;
/// The GDT.
pub const GDT_ADDR: u64 = 0x500;
/// The IDT (empty: the kernel loads its own before enabling interrupts).
pub const IDT_ADDR: u64 = 0x520;
/// The PVH start-info structure; EBX at entry.
pub const START_INFO: u64 = 0x6000;
/// The PVH module list (one module: the initramfs).
pub const MODLIST_ADDR: u64 = 0x6100;
/// The PVH memory map.
pub const MEMMAP_ADDR: u64 = 0x6200;
/// The kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// The end of low RAM (the EBDA and BIOS area above it are reserved).
pub const LOW_RAM_END: u64 = 0x9fc00;
/// The ACPI tables (in the BIOS area the kernel scans for the RSDP).
pub const ACPI_ADDR: u64 = 0xe0000;
/// Where high RAM starts (the kernel is loaded at its ELF physical addresses above it).
pub const KERNEL_ADDR: u64 = 0x10_0000;

/// `__BOOT_CS`, `__BOOT_DS` and the TSS selector of [`GDT`].
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`.
pub const BOOT_DS: u16 = 0x18;
/// The TSS selector.
pub const BOOT_TSS: u16 = 0x20;
/// The GDT: null, null, flat 32-bit code, flat data, a TSS.
pub const GDT: [u64; 5] = [
    0,
    0,
    gdt_entry(0xc09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];

/// A GDT descriptor from VMX-style access rights, base and 20-bit limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The kernel command line: serial console, keyboard-controller reboot
/// (the VMM's stop signal), `/dev/kmsg` without rate limit.
pub const CMDLINE: &str = "console=ttyS0 earlyprintk=serial,ttyS0 reboot=k panic=-1 printk.devkmsg=on printk.time=0 loglevel=4 nomodeset pci=off tsc=reliable i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd rdinit=/init nokaslr noxsave";

/// Why the guest could not be set up.
#[derive(Debug)]
pub enum BootError {
    /// Guest memory could not be created.
    Memory(String),
    /// The kernel could not be opened or loaded.
    Kernel(String),
    /// The initramfs does not fit.
    Initramfs(String),
}

/// The PVH start-info structure's magic (`XEN_HVM_START_MAGIC_VALUE`).
const PVH_MAGIC: u32 = 0x336e_c578;

/// Creates guest memory and lays out everything the kernel needs for the
/// PVH entry (`arch/x86/platform/pvh/head.S`: 32-bit protected mode,
/// paging off, EBX = the start-info structure): the vmlinux ELF
/// (linux-loader), the start info, its memory map and module list (the
/// initramfs), the command line, the ACPI tables and the GDT. Returns the
/// memory and the PVH entry point.
pub fn load(
    vmlinux: &str,
    initramfs: &[u8],
    vcpus: u8,
) -> Result<(GuestMemoryMmap, u64), BootError> {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)])
        .map_err(|e| BootError::Memory(format!("{e:?}")))?;
    let mut image =
        File::open(vmlinux).map_err(|e| BootError::Kernel(format!("{vmlinux}: {e}")))?;
    let loaded = Elf::load(&mem, None, &mut image, Some(GuestAddress(KERNEL_ADDR)))
        .map_err(|e| BootError::Kernel(format!("{vmlinux}: {e}")))?;
    let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap else {
        return Err(BootError::Kernel(format!(
            "{vmlinux}: no PVH entry (CONFIG_PVH)"
        )));
    };

    // The initramfs: page aligned, at the top of memory.
    let initrd_addr = (MEM_SIZE - initramfs.len() as u64) & !0xfff;
    if initrd_addr < loaded.kernel_end + (32 << 20) {
        return Err(BootError::Initramfs(format!(
            "{} bytes do not fit above the kernel",
            initramfs.len()
        )));
    }
    write(&mem, initramfs, initrd_addr, "initramfs")?;
    let mut cmdline = CMDLINE.as_bytes().to_vec();
    cmdline.push(0);
    write(&mem, &cmdline, CMDLINE_ADDR, "cmdline")?;

    let e820: [(u64, u64, u32); 3] = [
        (0, LOW_RAM_END, 1),
        (LOW_RAM_END, KERNEL_ADDR - LOW_RAM_END, 2),
        (KERNEL_ADDR, MEM_SIZE - KERNEL_ADDR, 1),
    ];
    let mut memmap = Vec::new();
    for (addr, size, kind) in e820 {
        memmap.extend_from_slice(&addr.to_le_bytes());
        memmap.extend_from_slice(&size.to_le_bytes());
        memmap.extend_from_slice(&kind.to_le_bytes());
        memmap.extend_from_slice(&0u32.to_le_bytes());
    }
    write(&mem, &memmap, MEMMAP_ADDR, "memory map")?;
    let mut module = Vec::new();
    for v in [initrd_addr, initramfs.len() as u64, 0, 0] {
        module.extend_from_slice(&v.to_le_bytes());
    }
    write(&mem, &module, MODLIST_ADDR, "module list")?;
    let mut info = Vec::new();
    for v in [PVH_MAGIC, 1, 0, 1] {
        info.extend_from_slice(&v.to_le_bytes());
    }
    for v in [MODLIST_ADDR, CMDLINE_ADDR, ACPI_ADDR, MEMMAP_ADDR] {
        info.extend_from_slice(&v.to_le_bytes());
    }
    info.extend_from_slice(&(e820.len() as u32).to_le_bytes());
    info.extend_from_slice(&0u32.to_le_bytes());
    write(&mem, &info, START_INFO, "start info")?;

    write(&mem, &acpi::tables(ACPI_ADDR, vcpus), ACPI_ADDR, "ACPI")?;
    for (i, e) in GDT.iter().enumerate() {
        write(&mem, &e.to_le_bytes(), GDT_ADDR + 8 * i as u64, "GDT")?;
    }
    write(&mem, &[0; 8], IDT_ADDR, "IDT")?;
    Ok((mem, entry.0))
}

fn write(mem: &GuestMemoryMmap, bytes: &[u8], at: u64, what: &str) -> Result<(), BootError> {
    mem.write_slice(bytes, GuestAddress(at))
        .map_err(|e| BootError::Memory(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_are_the_flat_boot_descriptors() {
        // The well-known encodings of flat 4 GiB code and data.
        assert_eq!(GDT[2], 0x00cf_9b00_0000_ffff);
        assert_eq!(GDT[3], 0x00cf_9300_0000_ffff);
        assert_eq!(GDT[4], 0x008f_8b00_0000_ffff);
    }
}
