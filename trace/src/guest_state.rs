//! `expect_guest`: the keys a trace may check in the hypervisor's own copy
//! of a vCPU (what the guest will see at its next entry), and how each is
//! read from [`VcpuState`].

use pvgate_codegen::Registry;
use pvgate_codegen::number;
use pvgate_hyp::{Gpr, SegReg, VcpuState};

/// One part of a segment register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegPart {
    /// The selector.
    Selector,
    /// The base.
    Base,
    /// The limit.
    Limit,
    /// The access rights (VMX format).
    Ar,
}

/// A piece of guest state an `expect_guest` key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestField {
    /// A general register, RIP or RSP.
    Gpr(Gpr),
    /// RFLAGS.
    Rflags,
    /// CR0.
    Cr0,
    /// CR3: the guest's page-table root (`load_mmu_pgd`'s root).
    Cr3,
    /// CR4.
    Cr4,
    /// CR8 (TPR\[7:4\]).
    Cr8,
    /// IA32_EFER.
    Efer,
    /// A segment register's part.
    Seg(SegReg, SegPart),
    /// IDTR base (`true`) or limit.
    Idt(bool),
    /// GDTR base (`true`) or limit.
    Gdt(bool),
    /// An MSR in the vCPU's store.
    Msr(u32),
}

/// Every key `expect_guest` knows, for messages.
pub const KEYS_HELP: &str = "rax … r15, rip, rsp, rflags, cr0, cr3, cr4, cr8, efer, \
<seg>_selector/_base/_limit/_ar (cs, ds, es, fs, gs, ss, tr, ldtr), idt_base, idt_limit, \
gdt_base, gdt_limit, msr.<NAME or 0xINDEX>";

impl GuestField {
    /// Parses an `expect_guest` key.
    pub fn parse(key: &str) -> Result<GuestField, String> {
        let unknown = || format!("`expect_guest`: unknown key `{key}` (known: {KEYS_HELP})");
        if let Some(msr) = key.strip_prefix("msr.") {
            let index = if number::looks_numeric(msr) {
                number::from_toml(&toml::Value::String(msr.to_string()), 32)
                    .ok()
                    .and_then(|n| u32::try_from(n).ok())
            } else {
                Registry::builtin().msr_by_name(msr).map(|e| e.index)
            };
            return index.map(GuestField::Msr).ok_or_else(unknown);
        }
        if let Some(reg) = Gpr::from_name(key) {
            return Ok(GuestField::Gpr(reg));
        }
        let field = match key {
            "rflags" => GuestField::Rflags,
            "cr0" => GuestField::Cr0,
            "cr3" => GuestField::Cr3,
            "cr4" => GuestField::Cr4,
            "cr8" => GuestField::Cr8,
            "efer" => GuestField::Efer,
            "idt_base" => GuestField::Idt(true),
            "idt_limit" => GuestField::Idt(false),
            "gdt_base" => GuestField::Gdt(true),
            "gdt_limit" => GuestField::Gdt(false),
            _ => {
                let (seg, part) = key.split_once('_').ok_or_else(unknown)?;
                let seg = SegReg::from_name(seg).ok_or_else(unknown)?;
                let part = match part {
                    "selector" => SegPart::Selector,
                    "base" => SegPart::Base,
                    "limit" => SegPart::Limit,
                    "ar" => SegPart::Ar,
                    _ => return Err(unknown()),
                };
                GuestField::Seg(seg, part)
            }
        };
        Ok(field)
    }

    /// Its value in `v`; `None` for an MSR the vCPU's store does not hold.
    pub fn read(self, v: &VcpuState) -> Option<u64> {
        Some(match self {
            GuestField::Gpr(reg) => v.gpr(reg),
            GuestField::Rflags => v.rflags,
            GuestField::Cr0 => v.cr0,
            GuestField::Cr3 => v.mmu_root,
            GuestField::Cr4 => v.cr4,
            GuestField::Cr8 => v.cr8,
            GuestField::Efer => v.efer,
            GuestField::Seg(seg, part) => {
                let s = v.segment(seg);
                match part {
                    SegPart::Selector => u64::from(s.selector),
                    SegPart::Base => s.base,
                    SegPart::Limit => u64::from(s.limit),
                    SegPart::Ar => u64::from(s.ar),
                }
            }
            GuestField::Idt(true) => v.idt.base,
            GuestField::Idt(false) => u64::from(v.idt.limit),
            GuestField::Gdt(true) => v.gdt.base,
            GuestField::Gdt(false) => u64::from(v.gdt.limit),
            GuestField::Msr(index) => return v.msr(index),
        })
    }
}

/// One `expect_guest` entry: the key as written, the field, the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestExpect {
    /// The key as the trace wrote it.
    pub key: String,
    /// What it names.
    pub field: GuestField,
    /// The value the guest must see.
    pub value: u64,
}
