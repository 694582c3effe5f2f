//! The registers the ABI names: general registers ([`Gpr`], written in
//! windows as a [`GprWrite`]), segment registers ([`SegReg`], [`Segment`])
//! and descriptor tables ([`DescTable`]).

/// A general register, numbered as in `struct kvm_regs` (RAX … R15, RIP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Gpr {
    /// RAX.
    Rax = 0,
    /// RBX.
    Rbx = 1,
    /// RCX.
    Rcx = 2,
    /// RDX.
    Rdx = 3,
    /// RSI.
    Rsi = 4,
    /// RDI.
    Rdi = 5,
    /// RSP.
    Rsp = 6,
    /// RBP.
    Rbp = 7,
    /// R8.
    R8 = 8,
    /// R9.
    R9 = 9,
    /// R10.
    R10 = 10,
    /// R11.
    R11 = 11,
    /// R12.
    R12 = 12,
    /// R13.
    R13 = 13,
    /// R14.
    R14 = 14,
    /// R15 (reserved for the hypervisor in a protected VM: forced to 0 at first run).
    R15 = 15,
    /// RIP.
    Rip = 16,
}

/// How many registers [`Gpr`] names.
pub const GPR_COUNT: usize = 17;

impl Gpr {
    /// Every register, in `kvm_regs` order.
    pub const ALL: [Gpr; GPR_COUNT] = [
        Gpr::Rax,
        Gpr::Rbx,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::Rsp,
        Gpr::Rbp,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
        Gpr::Rip,
    ];

    /// The register's lowercase name (`rax` … `r15`, `rip`).
    pub const fn name(self) -> &'static str {
        match self {
            Gpr::Rax => "rax",
            Gpr::Rbx => "rbx",
            Gpr::Rcx => "rcx",
            Gpr::Rdx => "rdx",
            Gpr::Rsi => "rsi",
            Gpr::Rdi => "rdi",
            Gpr::Rsp => "rsp",
            Gpr::Rbp => "rbp",
            Gpr::R8 => "r8",
            Gpr::R9 => "r9",
            Gpr::R10 => "r10",
            Gpr::R11 => "r11",
            Gpr::R12 => "r12",
            Gpr::R13 => "r13",
            Gpr::R14 => "r14",
            Gpr::R15 => "r15",
            Gpr::Rip => "rip",
        }
    }

    /// Parses a name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Gpr> {
        Gpr::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Decodes the ABI number; `None` when out of range.
    pub fn from_u64(raw: u64) -> Option<Gpr> {
        usize::try_from(raw)
            .ok()
            .and_then(|i| Gpr::ALL.get(i).copied())
    }
}

/// A set of general-register writes (`set_regs`): bit `i` of `mask` says
/// `values[i]` is written to `Gpr::ALL[i]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GprWrite {
    /// Which registers are written.
    pub mask: u32,
    /// The values, indexed by [`Gpr`] number.
    pub values: [u64; GPR_COUNT],
}

impl GprWrite {
    /// Adds one register to the write.
    pub fn with(mut self, reg: Gpr, value: u64) -> GprWrite {
        self.mask |= 1 << (reg as u32);
        if let Some(v) = self.values.get_mut(reg as usize) {
            *v = value;
        }
        self
    }
}

/// A segment register, in the order of the trace format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum SegReg {
    /// CS.
    Cs = 0,
    /// DS.
    Ds = 1,
    /// ES.
    Es = 2,
    /// FS.
    Fs = 3,
    /// GS.
    Gs = 4,
    /// SS.
    Ss = 5,
    /// TR.
    Tr = 6,
    /// LDTR.
    Ldtr = 7,
}

impl SegReg {
    /// Every segment register.
    pub const ALL: [SegReg; 8] = [
        SegReg::Cs,
        SegReg::Ds,
        SegReg::Es,
        SegReg::Fs,
        SegReg::Gs,
        SegReg::Ss,
        SegReg::Tr,
        SegReg::Ldtr,
    ];

    /// The lowercase name (`cs` … `ldtr`).
    pub const fn name(self) -> &'static str {
        match self {
            SegReg::Cs => "cs",
            SegReg::Ds => "ds",
            SegReg::Es => "es",
            SegReg::Fs => "fs",
            SegReg::Gs => "gs",
            SegReg::Ss => "ss",
            SegReg::Tr => "tr",
            SegReg::Ldtr => "ldtr",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<SegReg> {
        SegReg::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Decodes the ABI number.
    pub fn from_u64(raw: u64) -> Option<SegReg> {
        usize::try_from(raw)
            .ok()
            .and_then(|i| SegReg::ALL.get(i).copied())
    }
}

/// One segment register as VMCS guest state holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    /// The selector.
    pub selector: u16,
    /// The base address.
    pub base: u64,
    /// The limit.
    pub limit: u32,
    /// The access rights (VMX format).
    pub ar: u32,
}

/// GDTR or IDTR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DescTable {
    /// The base address.
    pub base: u64,
    /// The limit.
    pub limit: u16,
}
