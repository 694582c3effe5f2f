//! The ACPI tables a stock x86_64 kernel needs to find its CPUs: the cloud
//! kernel has no MP-table parser (`CONFIG_X86_MPPARSE` is off), so the
//! secondaries are known only from the MADT. RSDP -> XSDT -> {FADT (->
//! DSDT), MADT}, as Firecracker writes them: a hardware-reduced FADT, an
//! empty DSDT, one local APIC per vCPU and one I/O APIC.

/// Where the local APICs are (the architectural default).
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
/// Where KVM's in-kernel I/O APIC is.
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;

const HEADER_LEN: usize = 36;
const FADT_LEN: usize = 276;
/// FADT.Flags.HW_REDUCED_ACPI (ACPI 6.4 Table 5.10).
const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// IAPC_BOOT_ARCH: VGA not present (bit 2), MSI not supported (bit 3).
const IAPC_BOOT_ARCH: u16 = (1 << 2) | (1 << 3);

/// The tables laid out from guest physical address `base`, and the RSDP's
/// address (`base`).
pub fn tables(base: u64, vcpus: u8) -> Vec<u8> {
    let rsdp_len = 36;
    let xsdt_at = base + rsdp_len;
    let xsdt_len = HEADER_LEN as u64 + 16;
    let fadt_at = xsdt_at + xsdt_len;
    let dsdt_at = fadt_at + FADT_LEN as u64;
    let madt_at = dsdt_at + HEADER_LEN as u64;

    let mut xsdt = header(b"XSDT", 1);
    xsdt.extend_from_slice(&fadt_at.to_le_bytes());
    xsdt.extend_from_slice(&madt_at.to_le_bytes());
    finish(&mut xsdt);

    let mut fadt = header(b"FACP", 6);
    fadt.resize(FADT_LEN, 0);
    put(
        &mut fadt,
        40,
        &u32::try_from(dsdt_at).unwrap_or(0).to_le_bytes(),
    );
    put(&mut fadt, 109, &IAPC_BOOT_ARCH.to_le_bytes());
    put(&mut fadt, 112, &FADT_HW_REDUCED_ACPI.to_le_bytes());
    put(&mut fadt, 140, &dsdt_at.to_le_bytes()); // X_DSDT
    finish(&mut fadt);

    let mut dsdt = header(b"DSDT", 2);
    finish(&mut dsdt);

    let mut madt = header(b"APIC", 4);
    madt.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    madt.extend_from_slice(&0u32.to_le_bytes()); // flags: no 8259 pair
    for id in 0..vcpus {
        // Processor Local APIC: type 0, length 8, UID, APIC ID, enabled.
        madt.extend_from_slice(&[0, 8, id, id, 1, 0, 0, 0]);
    }
    // I/O APIC: type 1, length 12, ID, reserved, address, GSI base 0.
    madt.extend_from_slice(&[1, 12, vcpus, 0]);
    madt.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    madt.extend_from_slice(&0u32.to_le_bytes());
    finish(&mut madt);

    let mut rsdp = Vec::with_capacity(36);
    rsdp.extend_from_slice(b"RSD PTR ");
    rsdp.push(0); // checksum of the first 20 bytes
    rsdp.extend_from_slice(b"PVGATE");
    rsdp.push(2); // revision: ACPI 2.0+, XSDT
    rsdp.extend_from_slice(&0u32.to_le_bytes()); // no RSDT
    rsdp.extend_from_slice(&36u32.to_le_bytes());
    rsdp.extend_from_slice(&xsdt_at.to_le_bytes());
    rsdp.push(0); // extended checksum
    rsdp.extend_from_slice(&[0; 3]);
    let c = checksum(rsdp.get(..20).unwrap_or_default());
    put(&mut rsdp, 8, &[c]);
    let c = checksum(&rsdp);
    put(&mut rsdp, 32, &[c]);

    [rsdp, xsdt, fadt, dsdt, madt].concat()
}

/// A table header with the length left for [`finish`].
fn header(signature: &[u8; 4], revision: u8) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(signature);
    h.extend_from_slice(&0u32.to_le_bytes()); // length
    h.push(revision);
    h.push(0); // checksum
    h.extend_from_slice(b"PVGATE");
    h.extend_from_slice(b"PVGATEE2");
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(b"PVGT");
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

/// Writes the length and the checksum of a table.
fn finish(t: &mut [u8]) {
    let len = u32::try_from(t.len()).unwrap_or(0);
    put(t, 4, &len.to_le_bytes());
    put(t, 9, &[0]);
    let c = checksum(t);
    put(t, 9, &[c]);
}

fn put(t: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = t.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// The byte that makes `bytes` sum to 0.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn every_table_sums_to_zero_and_the_pointers_chain() {
        let base = 0xe0000;
        let t = tables(base, 2);
        assert_eq!(&t[..8], b"RSD PTR ");
        assert_eq!(sum(&t[..20]), 0, "RSDP checksum");
        assert_eq!(sum(&t[..36]), 0, "RSDP extended checksum");
        let off = |gpa: u64| (gpa - base) as usize;
        let xsdt = off(u64_at(&t, 24));
        assert_eq!(&t[xsdt..xsdt + 4], b"XSDT");
        let mut sigs = vec![];
        for i in 0..2 {
            let at = off(u64_at(&t, xsdt + 36 + 8 * i));
            let len = u32_at(&t, at + 4) as usize;
            assert_eq!(sum(&t[at..at + len]), 0, "checksum of table {i}");
            sigs.push(t[at..at + 4].to_vec());
            if &t[at..at + 4] == b"FACP" {
                let dsdt = off(u64_at(&t, at + 140));
                assert_eq!(&t[dsdt..dsdt + 4], b"DSDT");
                assert_eq!(sum(&t[dsdt..dsdt + 36]), 0);
            }
            if &t[at..at + 4] == b"APIC" {
                // two local APICs (8 bytes) and one I/O APIC (12 bytes)
                assert_eq!(len, 36 + 8 + 2 * 8 + 12);
                assert_eq!(&t[at + 44..at + 48], &[0, 8, 0, 0]);
                assert_eq!(&t[at + 52..at + 56], &[0, 8, 1, 1]);
            }
        }
        assert_eq!(sigs, [b"FACP".to_vec(), b"APIC".to_vec()]);
    }
}
