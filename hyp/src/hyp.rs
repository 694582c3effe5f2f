//! The hypervisor core: fixed-capacity VM and vCPU tables, the lifecycle,
//! and one handler per PV call, each asking the gate first.

use pvgate_gate::{
    Access, Decision, MsrConstraint, Phase, Policy, PvCall, PvConstraint, RegControl, Register,
    RuleId, Verdict, ViolationMode, VmKind, check_msr_write, decide_cpuid, decide_msr, decide_pv,
    merge_register, msr_read_view, supported_register,
};

use crate::audit::{Audit, Effect, Resource};
use crate::call::Call;
use crate::cpu::{CpuModel, CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES, find_entry};
use crate::error::{CallError, CreateVcpuError, CreateVmError, ReleaseError};
use crate::state::{Gpr, RESET_MSRS, RESET_RIP, SegReg, Segment, VcpuState};

/// A VM handle: generation in bits 63:32, slot in bits 15:0. Never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmHandle(pub u64);

/// A vCPU handle: VM generation in bits 63:32, bit 31 set (so a vCPU
/// handle is never a VM handle), VM slot in bits 30:16, vCPU index in bits
/// 15:0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VcpuHandle(pub u64);

impl VmHandle {
    const fn new(generation: u32, slot: usize) -> VmHandle {
        VmHandle((generation as u64) << 32 | (slot as u64 & 0xffff))
    }

    fn split(self) -> Option<(u32, usize)> {
        if self.0 >> 16 & 0xffff != 0 {
            return None;
        }
        Some(((self.0 >> 32) as u32, (self.0 & 0xffff) as usize))
    }
}

/// Bit 31 of every vCPU handle.
const VCPU_TAG: u64 = 1 << 31;

impl VcpuHandle {
    const fn new(generation: u32, slot: usize, index: usize) -> VcpuHandle {
        VcpuHandle(
            (generation as u64) << 32
                | VCPU_TAG
                | (slot as u64 & 0x7fff) << 16
                | (index as u64 & 0xffff),
        )
    }

    /// (generation, slot, index); a handle without the vCPU tag gets a
    /// slot no table has, so it is refused like any bad handle.
    fn split(self) -> (u32, usize, usize) {
        let slot = if self.0 & VCPU_TAG == 0 {
            usize::MAX
        } else {
            (self.0 >> 16 & 0x7fff) as usize
        };
        ((self.0 >> 32) as u32, slot, (self.0 & 0xffff) as usize)
    }

    /// The handle of the VM this vCPU belongs to.
    pub fn vm(self) -> VmHandle {
        VmHandle::new((self.0 >> 32) as u32, (self.0 >> 16 & 0x7fff) as usize)
    }

    /// The vCPU's index in its VM.
    pub fn index(self) -> usize {
        self.split().2
    }
}

/// Settings of the hypervisor that are not policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypConfig {
    /// RIP the boot vCPU (index 0) of a protected VM is given at first run:
    /// the hypervisor, not the VMM, chooses the firmware entry point.
    pub pvm_boot_rip: u64,
}

impl HypConfig {
    /// The default: the boot vCPU of a protected VM starts at the reset vector.
    pub const DEFAULT: HypConfig = HypConfig {
        pvm_boot_rip: RESET_RIP,
    };
}

impl Default for HypConfig {
    fn default() -> Self {
        HypConfig::DEFAULT
    }
}

/// What became of one PV call: the ABI status and outputs, and what the
/// audit records (effect, deciding rule, resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The call.
    pub call: PvCall,
    /// What became of it.
    pub effect: Effect,
    /// The rule that decided it (the resource rule for MSR/CPUID decisions);
    /// `None` for default deny and for errors before any decision.
    pub rule: Option<RuleId>,
    /// What the decision was about.
    pub resource: Resource,
    /// The error, when the call failed.
    pub error: Option<CallError>,
    /// Outputs (RBX, RCX, RDX, RSI in the ABI); zero on error.
    pub out: [u64; 4],
    /// For `vcpu_after_set_cpuid`: CPUID registers the hypervisor replaced.
    pub replaced: u32,
}

impl Outcome {
    fn new(call: PvCall, effect: Effect, rule: Option<RuleId>, resource: Resource) -> Outcome {
        Outcome {
            call,
            effect,
            rule,
            resource,
            error: None,
            out: [0; 4],
            replaced: 0,
        }
    }

    fn failed(call: PvCall, error: CallError, rule: Option<RuleId>, resource: Resource) -> Outcome {
        Outcome {
            error: Some(error),
            ..Outcome::new(call, error.effect(), rule, resource)
        }
    }

    /// The ABI status: 0 on success, `-errno` on failure.
    pub fn status(&self) -> i64 {
        self.error.map_or(0, |e| e.errno().wrapping_neg())
    }

    /// Whether the call succeeded (allow, ignore or filter).
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Clone, Copy, Debug)]
struct VmMeta {
    generation: u32,
    live: bool,
    kind: VmKind,
    destroyed: bool,
    /// Bit `i`: vCPU `i` exists.
    present: u64,
}

struct VmSlot<const VCPUS: usize> {
    meta: spin::RwLock<VmMeta>,
    vcpus: [spin::Mutex<VcpuState>; VCPUS],
}

/// The hypervisor core, generic over the policy (the image's const tables,
/// or the codegen interpreter) with at most `VMS` VMs of at most `VCPUS`
/// vCPUs (`VCPUS <= 64`).
///
/// Locking: each VM slot has a read-write lock over its metadata (readers:
/// every vCPU call; writers: create/destroy), each vCPU its own spin lock,
/// always taken after its VM's lock. Calls on different vCPUs never wait
/// for each other; calls on the same vCPU are serialised.
pub struct Hyp<P, const VMS: usize = 8, const VCPUS: usize = 8> {
    policy: P,
    config: HypConfig,
    cpu: spin::Once<CpuModel>,
    vms: [VmSlot<VCPUS>; VMS],
    audit: Audit,
}

/// What a vCPU handler needs besides the vCPU.
struct Ctx<'a, P> {
    policy: &'a P,
    cpu: &'a CpuModel,
    config: HypConfig,
    kind: VmKind,
    index: usize,
    call: PvCall,
    rule: Option<RuleId>,
    pc: PvConstraint,
}

impl<P: Policy> Ctx<'_, P> {
    fn ok(&self) -> Outcome {
        Outcome::new(self.call, Effect::Allow, self.rule, Resource::Call)
    }

    fn out(&self, out: [u64; 4]) -> Outcome {
        let mask = if self.call.access() == Access::Read {
            self.pc.read_mask
        } else {
            u64::MAX
        };
        Outcome {
            out: out.map(|w| w & mask),
            ..self.ok()
        }
    }

    fn fail(&self, error: CallError) -> Outcome {
        Outcome::failed(self.call, error, self.rule, Resource::Call)
    }

    fn bad(&self, what: &'static str, value: u64) -> Outcome {
        self.fail(CallError::BadArgument {
            call: self.call,
            what,
            value,
        })
    }
}

/// The CPUID table the hypervisor offers as supported for a VM kind: the
/// model's base with the forced values of the rules for (kind, `setup`)
/// applied. Proposing it unchanged is always accepted.
pub fn supported_cpuid<P: Policy + ?Sized>(policy: &P, cpu: &CpuModel, kind: VmKind) -> CpuidTable {
    let mut table = CpuidTable::new();
    for base in &cpu.base {
        let controls = cpuid_controls(&decide_cpuid(
            policy,
            kind,
            Phase::Setup,
            base.leaf,
            base.subleaf,
        ));
        let mut e = *base;
        for (reg, c) in Register::ALL.into_iter().zip(controls) {
            e.set_reg(reg, supported_register(base.reg(reg), c));
        }
        // The base has at most MAX_CPUID_ENTRIES entries, so this fits.
        let _ = table.push(e);
    }
    table
}

/// The per-register controls a CPUID decision gives the host: the rule's
/// for `allow`, none (everything fixed) otherwise.
fn cpuid_controls(d: &Decision<'_>) -> [RegControl; 4] {
    match (d.verdict, d.rule) {
        (Verdict::Allow, Some(rule)) => rule.cpuid_controls(),
        _ => [RegControl::FIXED; 4],
    }
}

fn sort_table(t: &mut CpuidTable) {
    t.sort_unstable_by_key(|e| (e.leaf, e.subleaf));
}

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// A hypervisor with no VMs and no CPU model yet (see
    /// [`Hyp::install_cpu_model`]); `const`, so it can be a `static`.
    pub const fn new(policy: P, config: HypConfig) -> Self {
        const { assert!(VCPUS <= 64 && VCPUS > 0 && VMS <= 0x7fff) };
        Hyp {
            policy,
            config,
            cpu: spin::Once::new(),
            vms: [const {
                VmSlot {
                    meta: spin::RwLock::new(VmMeta {
                        generation: 0,
                        live: false,
                        kind: VmKind::Protected,
                        destroyed: false,
                        present: 0,
                    }),
                    vcpus: [const { spin::Mutex::new(VcpuState::RESET) }; VCPUS],
                }
            }; VMS],
            audit: Audit::new(),
        }
    }

    /// A hypervisor with its CPU model installed.
    pub fn with_cpu(policy: P, cpu: CpuModel, config: HypConfig) -> Self {
        let hyp = Hyp::new(policy, config);
        hyp.install_cpu_model(cpu);
        hyp
    }

    /// Installs the CPU model; only the first call has an effect. Returns
    /// whether this call installed it.
    pub fn install_cpu_model(&self, cpu: CpuModel) -> bool {
        let mut installed = false;
        self.cpu.call_once(|| {
            installed = true;
            cpu
        });
        installed
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The CPU model, once installed.
    pub fn cpu_model(&self) -> Option<&CpuModel> {
        self.cpu.get()
    }

    /// The audit counters and ring.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The CPUID table offered as supported for a VM kind (empty before a
    /// CPU model is installed).
    pub fn supported_cpuid(&self, kind: VmKind) -> CpuidTable {
        match self.cpu.get() {
            Some(cpu) => supported_cpuid(&self.policy, cpu, kind),
            None => CpuidTable::new(),
        }
    }

    /// Creates a VM of a fixed kind.
    pub fn create_vm(&self, kind: VmKind) -> Result<VmHandle, CreateVmError> {
        if self.cpu.get().is_none() {
            return Err(CreateVmError::NoCpuModel);
        }
        for (slot, vm) in self.vms.iter().enumerate() {
            let Some(mut meta) = vm.meta.try_write() else {
                continue;
            };
            if meta.live {
                continue;
            }
            meta.generation = meta.generation.wrapping_add(1).max(1);
            meta.live = true;
            meta.kind = kind;
            meta.destroyed = false;
            meta.present = 0;
            return Ok(VmHandle::new(meta.generation, slot));
        }
        Err(CreateVmError::Full { capacity: VMS })
    }

    /// Creates a vCPU in a VM, in phase `setup`, at architectural reset,
    /// with the supported CPUID table for the VM's kind.
    pub fn create_vcpu(&self, vm: VmHandle) -> Result<VcpuHandle, CreateVcpuError> {
        let bad = CreateVcpuError::BadHandle { handle: vm.0 };
        let (generation, slot) = vm.split().ok_or(bad)?;
        let slot_ref = self.vms.get(slot).ok_or(bad)?;
        let mut meta = slot_ref.meta.write();
        if !meta.live || meta.generation != generation {
            return Err(bad);
        }
        if meta.destroyed {
            return Err(CreateVcpuError::Destroyed { handle: vm.0 });
        }
        let index = (0..VCPUS)
            .find(|i| meta.present & (1u64 << i) == 0)
            .ok_or(CreateVcpuError::Full { capacity: VCPUS })?;
        let cell = slot_ref
            .vcpus
            .get(index)
            .ok_or(CreateVcpuError::Full { capacity: VCPUS })?;
        let mut v = cell.lock();
        *v = VcpuState::RESET;
        if let Some(cpu) = self.cpu.get() {
            v.cpuid = supported_cpuid(&self.policy, cpu, meta.kind);
            // RDX at reset holds the processor signature (CPUID.1:EAX).
            v.set_gpr(Gpr::Rdx, u64::from(cpu.base_entry(1, 0).eax));
        }
        for (index, value) in RESET_MSRS {
            v.set_msr(index, value);
        }
        meta.present |= 1u64 << index;
        Ok(VcpuHandle::new(meta.generation, slot, index))
    }

    /// Releases a torn-down vCPU's slot.
    pub fn destroy_vcpu(&self, vcpu: VcpuHandle) -> Result<(), ReleaseError> {
        let bad = ReleaseError::BadHandle { handle: vcpu.0 };
        let (generation, slot, index) = vcpu.split();
        let slot_ref = self.vms.get(slot).ok_or(bad)?;
        let mut meta = slot_ref.meta.write();
        if !meta.live
            || meta.generation != generation
            || index >= 64
            || meta.present & (1u64 << index) == 0
        {
            return Err(bad);
        }
        let cell = slot_ref.vcpus.get(index).ok_or(bad)?;
        if cell.lock().phase != Phase::Teardown {
            return Err(ReleaseError::NotTornDown { handle: vcpu.0 });
        }
        meta.present &= !(1u64 << index);
        Ok(())
    }

    /// Releases a destroyed VM's slot (and its vCPUs'): its handles become
    /// invalid.
    pub fn free_vm(&self, vm: VmHandle) -> Result<(), ReleaseError> {
        let bad = ReleaseError::BadHandle { handle: vm.0 };
        let (generation, slot) = vm.split().ok_or(bad)?;
        let slot_ref = self.vms.get(slot).ok_or(bad)?;
        let mut meta = slot_ref.meta.write();
        if !meta.live || meta.generation != generation {
            return Err(bad);
        }
        if !meta.destroyed {
            return Err(ReleaseError::NotTornDown { handle: vm.0 });
        }
        meta.live = false;
        meta.present = 0;
        Ok(())
    }

    /// The kind of a live VM.
    pub fn vm_kind(&self, vm: VmHandle) -> Option<VmKind> {
        let (generation, slot) = vm.split()?;
        let meta = *self.vms.get(slot)?.meta.read();
        (meta.live && meta.generation == generation).then_some(meta.kind)
    }

    /// Reads a vCPU's phase (the host may always know it: it is a function
    /// of the calls it made).
    pub fn phase(&self, vcpu: VcpuHandle) -> Option<Phase> {
        self.inspect(vcpu, |v| v.phase)
    }

    /// Runs `f` over a vCPU's state. For tests and diagnostics of the
    /// hypervisor itself: the host ABI has no such call.
    pub fn inspect<R>(&self, vcpu: VcpuHandle, f: impl FnOnce(&VcpuState) -> R) -> Option<R> {
        let (generation, slot, index) = vcpu.split();
        let slot_ref = self.vms.get(slot)?;
        let meta = slot_ref.meta.read();
        if !meta.live
            || meta.generation != generation
            || index >= 64
            || meta.present & (1u64 << index) == 0
        {
            return None;
        }
        let v = slot_ref.vcpus.get(index)?.lock();
        Some(f(&v))
    }

    /// `vm_destroy`: asks the gate (kind, the VM's most advanced vCPU
    /// phase), then moves every vCPU of the VM to `teardown`.
    pub fn vm_destroy(&self, vm: VmHandle) -> Outcome {
        let call = PvCall::VmDestroy;
        let outcome = self.vm_destroy_inner(vm);
        self.account(call, vm.0, &outcome);
        outcome
    }

    fn vm_destroy_inner(&self, vm: VmHandle) -> Outcome {
        let call = PvCall::VmDestroy;
        let bad = Outcome::failed(
            call,
            CallError::BadHandle { handle: vm.0 },
            None,
            Resource::Call,
        );
        let Some((generation, slot)) = vm.split() else {
            return bad;
        };
        let Some(slot_ref) = self.vms.get(slot) else {
            return bad;
        };
        let mut meta = slot_ref.meta.write();
        if !meta.live || meta.generation != generation {
            return bad;
        }
        let mut phase = Phase::Setup;
        for (i, cell) in slot_ref.vcpus.iter().enumerate() {
            if meta.present & (1u64 << i) != 0 {
                phase = phase.max(cell.lock().phase);
            }
        }
        if meta.destroyed {
            phase = Phase::Teardown;
        }
        let d = decide_pv(&self.policy, meta.kind, phase, call);
        let rule = d.rule.map(|r| r.id);
        match d.verdict {
            Verdict::Deny => Outcome::failed(
                call,
                CallError::Denied {
                    call,
                    kind: meta.kind,
                    phase,
                },
                rule,
                Resource::Call,
            ),
            Verdict::Ignore => Outcome::new(call, Effect::Ignore, rule, Resource::Call),
            Verdict::Allow => {
                meta.destroyed = true;
                for (i, cell) in slot_ref.vcpus.iter().enumerate() {
                    if meta.present & (1u64 << i) != 0 {
                        cell.lock().advance(Phase::Teardown);
                    }
                }
                Outcome::new(call, Effect::Allow, rule, Resource::Call)
            }
        }
    }

    /// Makes one PV call on a vCPU. `cpuid` is the in/out table of
    /// `vcpu_after_set_cpuid` (the proposal in; the effective or corrected
    /// table out) and is left alone by every other call.
    pub fn call(&self, vcpu: VcpuHandle, call: Call, cpuid: &mut CpuidTable) -> Outcome {
        let outcome = self.call_inner(vcpu, call, cpuid);
        self.account(call.pv(), vcpu.0, &outcome);
        outcome
    }

    /// [`Hyp::call`] for calls other than `vcpu_after_set_cpuid`.
    pub fn call_simple(&self, vcpu: VcpuHandle, call: Call) -> Outcome {
        let mut none = CpuidTable::new();
        self.call(vcpu, call, &mut none)
    }

    fn account(&self, call: PvCall, handle: u64, o: &Outcome) {
        self.audit.count(Some(call), o.effect);
        if o.effect.is_recorded() {
            self.audit
                .record(call, handle, o.effect, o.resource, o.rule);
        }
    }

    pub(crate) fn count_invalid(&self, call: Option<PvCall>) {
        self.audit.count(call, Effect::Invalid);
    }

    fn call_inner(&self, vcpu: VcpuHandle, call: Call, cpuid: &mut CpuidTable) -> Outcome {
        let pv = call.pv();
        let bad = Outcome::failed(
            pv,
            CallError::BadHandle { handle: vcpu.0 },
            None,
            Resource::Call,
        );
        let Some(cpu) = self.cpu.get() else {
            return bad;
        };
        let (generation, slot, index) = vcpu.split();
        let Some(slot_ref) = self.vms.get(slot) else {
            return bad;
        };
        let meta = slot_ref.meta.read();
        if !meta.live
            || meta.generation != generation
            || index >= 64
            || meta.present & (1u64 << index) == 0
        {
            return bad;
        }
        let Some(cell) = slot_ref.vcpus.get(index) else {
            return bad;
        };
        let mut v = cell.lock();
        let d = decide_pv(&self.policy, meta.kind, v.phase, pv);
        let ctx = Ctx {
            policy: &self.policy,
            cpu,
            config: self.config,
            kind: meta.kind,
            index,
            call: pv,
            rule: d.rule.map(|r| r.id),
            pc: d.rule.map_or(PvConstraint::NONE, |r| r.pv_constraint()),
        };
        match d.verdict {
            Verdict::Deny => Outcome::failed(
                pv,
                CallError::Denied {
                    call: pv,
                    kind: meta.kind,
                    phase: v.phase,
                },
                ctx.rule,
                call.resource(),
            ),
            Verdict::Ignore => Outcome::new(pv, Effect::Ignore, ctx.rule, call.resource()),
            Verdict::Allow => execute(&ctx, &mut v, call, cpuid),
        }
    }
}

fn seg_out(s: Segment) -> [u64; 4] {
    [
        u64::from(s.selector),
        s.base,
        u64::from(s.limit),
        u64::from(s.ar),
    ]
}

fn set_segment(v: &mut VcpuState, seg: SegReg, s: Segment) {
    if let Some(slot) = v.segments.get_mut(seg as usize) {
        *slot = s;
    }
}

/// Carries out an allowed call: resource-level checks, then the change.
fn execute<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    call: Call,
    cpuid: &mut CpuidTable,
) -> Outcome {
    match call {
        Call::EnableNmiWindow => {
            v.irq.nmi_window = true;
            ctx.ok()
        }
        Call::EnableIrqWindow => {
            v.irq.irq_window = true;
            ctx.ok()
        }
        Call::InterruptAllowed => ctx.out([u64::from(v.interrupt_allowed()), 0, 0, 0]),
        Call::NmiAllowed => ctx.out([u64::from(v.nmi_allowed()), 0, 0, 0]),
        Call::GetNmiMask => ctx.out([u64::from(v.irq.nmi_mask), 0, 0, 0]),
        Call::InjectIrq { vector, soft } => {
            if let Err(o) = check_vector(ctx, vector, soft) {
                return o;
            }
            if let Some(pending) = v.irq.pending_irq {
                return ctx.fail(CallError::IrqPending { vector: pending });
            }
            v.irq.pending_irq = Some(vector);
            v.irq.pending_irq_soft = soft;
            Outcome {
                resource: Resource::Vector(vector),
                ..ctx.ok()
            }
        }
        Call::InjectIrqIfAllowed { vector, soft } => {
            if let Err(o) = check_vector(ctx, vector, soft) {
                return o;
            }
            let injected = v.interrupt_allowed();
            if injected {
                v.irq.pending_irq = Some(vector);
                v.irq.pending_irq_soft = soft;
            } else {
                // Not now: ask for an exit when the guest can take it.
                v.irq.irq_window = true;
            }
            Outcome {
                resource: Resource::Vector(vector),
                out: [u64::from(injected), 0, 0, 0],
                ..ctx.ok()
            }
        }
        Call::InjectNmi => {
            v.irq.pending_nmi = true;
            ctx.ok()
        }
        Call::CancelInjection => {
            v.irq.pending_irq = None;
            v.irq.pending_irq_soft = false;
            v.irq.pending_nmi = false;
            v.irq.pending_exception = None;
            ctx.ok()
        }
        Call::UpdateCr8Intercept { tpr, max_irr } => {
            v.irq.tpr_threshold = tpr;
            v.irq.max_irr = max_irr;
            ctx.ok()
        }
        Call::RefreshApicvExecCtrl { active } => {
            v.irq.apicv_active = active;
            ctx.ok()
        }
        Call::LoadEoiExitmap { bitmap } => {
            v.irq.eoi_exitmap = bitmap;
            ctx.ok()
        }
        Call::HwapicIsrUpdate { max_isr } => {
            v.irq.max_isr = max_isr;
            ctx.ok()
        }
        Call::HwapicIrrUpdate { max_irr } => {
            v.irq.max_irr = max_irr;
            ctx.ok()
        }
        Call::WriteTscOffset(x) => {
            v.tsc_offset = x;
            ctx.ok()
        }
        Call::WriteTscMultiplier(x) => {
            if x == 0 {
                return ctx.bad("tsc multiplier", x);
            }
            v.tsc_multiplier = x;
            ctx.ok()
        }
        Call::SetupMce { mcg_cap } => {
            let banks = mcg_cap & crate::cpu::MCG_BANK_COUNT;
            if banks == 0 || banks > ctx.cpu.mce_banks() {
                return ctx.fail(CallError::McgCapBanks {
                    asked: banks,
                    max: ctx.cpu.mce_banks(),
                });
            }
            let flags = mcg_cap & !(crate::cpu::MCG_BANK_COUNT | crate::cpu::MCG_EXT_CNT);
            let extra = flags & !ctx.cpu.mce_caps();
            if extra != 0 {
                return ctx.fail(CallError::McgCapFlags {
                    asked: mcg_cap,
                    extra,
                });
            }
            v.mcg_cap = mcg_cap;
            ctx.ok()
        }
        Call::VcpuRun => {
            if v.phase == Phase::Teardown {
                return ctx.fail(CallError::NotRunnable { phase: v.phase });
            }
            if v.phase == Phase::Setup {
                first_run(ctx, v);
            }
            v.runs = v.runs.wrapping_add(1);
            // Entering the guest delivers what was queued.
            v.irq.pending_irq = None;
            v.irq.pending_irq_soft = false;
            v.irq.pending_nmi = false;
            v.irq.pending_exception = None;
            ctx.ok()
        }
        Call::CompleteEmulatedMsr { error } => {
            v.emulated_msr_error = error;
            ctx.ok()
        }
        Call::ProtectedApicHasInterrupt => {
            ctx.out([u64::from(v.irq.pending_irq.is_some()), 0, 0, 0])
        }
        Call::SetEfer(x) => {
            v.efer = x;
            ctx.ok()
        }
        Call::SetMsr { index, value } => set_msr(ctx, v, index, value),
        Call::GetMsr { index } => get_msr(ctx, v, index),
        Call::SetCr0(x) => {
            v.cr0 = x;
            ctx.ok()
        }
        Call::SetCr4(x) => {
            v.cr4 = x;
            ctx.ok()
        }
        Call::SetRflags(x) => {
            v.rflags = x;
            ctx.ok()
        }
        Call::GetRflags => ctx.out([v.rflags, 0, 0, 0]),
        Call::SetSegment { seg, segment } => {
            set_segment(v, seg, segment);
            ctx.ok()
        }
        Call::GetSegment(seg) => ctx.out(seg_out(v.segment(seg))),
        Call::GetSegmentBase(seg) => ctx.out([v.segment(seg).base, 0, 0, 0]),
        Call::SetIdt(t) => {
            v.idt = t;
            ctx.ok()
        }
        Call::GetIdt => ctx.out([v.idt.base, u64::from(v.idt.limit), 0, 0]),
        Call::SetGdt(t) => {
            v.gdt = t;
            ctx.ok()
        }
        Call::GetGdt => ctx.out([v.gdt.base, u64::from(v.gdt.limit), 0, 0]),
        Call::FlushTlbAll
        | Call::FlushTlbCurrent
        | Call::FlushTlbGva { .. }
        | Call::FlushTlbGuest => {
            v.tlb_flushes = v.tlb_flushes.wrapping_add(1);
            ctx.ok()
        }
        Call::VcpuAfterSetCpuid => set_cpuid(ctx, v, cpuid),
        Call::VcpuAddFpstate { size } => {
            if ctx.kind != VmKind::Protected {
                return ctx.fail(CallError::NotProtected { call: ctx.call });
            }
            let min = u64::from(ctx.cpu.xsave_size).max(512);
            let max = 1 << 16;
            if size < min || size > max {
                return ctx.fail(CallError::FpstateSize { size, min, max });
            }
            v.fpstate_size = size;
            ctx.ok()
        }
        Call::LoadMmuPgd { root, level } => {
            if !(4..=5).contains(&level) {
                return ctx.bad("paging level", u64::from(level));
            }
            if root & 0xfff != 0 {
                return ctx.bad("page-table root (not page aligned)", root);
            }
            v.mmu_root = root;
            v.mmu_level = level;
            ctx.ok()
        }
        Call::SetRegs(w) => {
            for (i, reg) in Gpr::ALL.into_iter().enumerate() {
                if w.mask & (1 << i) != 0 {
                    v.set_gpr(reg, w.values.get(i).copied().unwrap_or(0));
                }
            }
            ctx.ok()
        }
        Call::SetDr7(x) => {
            v.dr7 = x;
            ctx.ok()
        }
        Call::CacheReg(reg) => ctx.out([v.gpr(reg), 0, 0, 0]),
        Call::SetInterruptShadow(x) => {
            if x > 3 {
                return ctx.bad("interrupt shadow", u64::from(x));
            }
            v.irq.interrupt_shadow = x;
            ctx.ok()
        }
        Call::GetInterruptShadow => ctx.out([u64::from(v.irq.interrupt_shadow), 0, 0, 0]),
        Call::InjectException { vector, error_code } => {
            if vector >= 32 {
                return ctx.bad("exception vector", u64::from(vector));
            }
            v.irq.pending_exception = Some((vector, error_code));
            ctx.ok()
        }
        Call::SetNmiMask(x) => {
            v.irq.nmi_mask = x;
            ctx.ok()
        }
        Call::UpdateExceptionBitmap(x) => {
            v.exception_bitmap = x;
            ctx.ok()
        }
        Call::VcpuReset => {
            // Architectural state back to reset; the phase, the CPUID
            // table, MSRs and setup-time resources stay.
            let keep = v.clone();
            *v = VcpuState::RESET;
            v.phase = keep.phase;
            v.runs = keep.runs;
            v.msrs = keep.msrs;
            v.cpuid = keep.cpuid;
            v.cpuid_set = keep.cpuid_set;
            v.mcg_cap = keep.mcg_cap;
            v.fpstate_size = keep.fpstate_size;
            v.tsc_offset = keep.tsc_offset;
            v.tsc_multiplier = keep.tsc_multiplier;
            v.set_gpr(Gpr::Rdx, u64::from(ctx.cpu.base_entry(1, 0).eax));
            ctx.ok()
        }
        Call::SetVirtualApicMode(mode) => {
            if mode > 3 {
                return ctx.bad("apic mode", u64::from(mode));
            }
            v.irq.apic_mode = mode;
            ctx.ok()
        }
        Call::DeliverSipiVector { vector } => {
            v.irq.sipi_vector = Some(vector);
            sipi_entry(v, vector);
            Outcome {
                resource: Resource::Vector(vector),
                ..ctx.ok()
            }
        }
    }
}

/// Real-mode entry at the SIPI vector's page: CS.selector = vector << 8,
/// CS.base = vector << 12, RIP = 0.
fn sipi_entry(v: &mut VcpuState, vector: u8) {
    let mut cs = v.segment(SegReg::Cs);
    cs.selector = u16::from(vector) << 8;
    cs.base = u64::from(vector) << 12;
    set_segment(v, SegReg::Cs, cs);
    v.set_gpr(Gpr::Rip, 0);
}

fn check_vector<P: Policy>(ctx: &Ctx<'_, P>, vector: u8, soft: bool) -> Result<(), Outcome> {
    let resource = Resource::Vector(vector);
    if vector < ctx.pc.min_vector {
        return Err(Outcome::failed(
            ctx.call,
            CallError::VectorTooLow {
                call: ctx.call,
                vector,
                min: ctx.pc.min_vector,
            },
            ctx.rule,
            resource,
        ));
    }
    if soft && !ctx.pc.allow_soft {
        return Err(Outcome::failed(
            ctx.call,
            CallError::SoftInterrupt {
                call: ctx.call,
                vector,
            },
            ctx.rule,
            resource,
        ));
    }
    Ok(())
}

/// State forced at the first run, overriding what the host set.
fn first_run<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) {
    if ctx.kind == VmKind::Protected {
        // R15 is reserved for the hypervisor (pKVM-IA).
        v.set_gpr(Gpr::R15, 0);
        if ctx.index == 0 {
            // The hypervisor chooses the firmware entry point.
            v.set_gpr(Gpr::Rip, ctx.config.pvm_boot_rip);
        } else {
            // Secondaries start from reset and wait for their SIPI.
            let keep_rdx = v.gpr(Gpr::Rdx);
            v.gprs = VcpuState::RESET.gprs;
            v.segments = VcpuState::RESET.segments;
            v.set_gpr(Gpr::Rdx, keep_rdx);
            if let Some(vector) = v.irq.sipi_vector {
                sipi_entry(v, vector);
            }
        }
    }
    // Policy-declared forced MSR bits: every stored MSR whose setup-phase
    // write rule forces bits gets them, written by the host or not.
    for (index, value) in v.msrs.iter_mut() {
        let d = decide_msr(ctx.policy, ctx.kind, Phase::Setup, Access::Write, *index);
        if let (Verdict::Allow, Some(rule)) = (d.verdict, d.rule) {
            let c: MsrConstraint = rule.msr_constraint();
            *value = (*value | c.force_on) & !c.force_off;
        }
    }
    v.advance(Phase::Running);
}

fn set_msr<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, index: u32, value: u64) -> Outcome {
    let resource = Resource::Msr(index);
    let d = decide_msr(ctx.policy, ctx.kind, v.phase, Access::Write, index);
    let rule = d.rule.map(|r| r.id);
    match (d.verdict, d.rule) {
        (Verdict::Ignore, _) => Outcome::new(ctx.call, Effect::Ignore, rule, resource),
        (Verdict::Allow, Some(r)) => match check_msr_write(r.msr_constraint(), value) {
            Err(e) => Outcome::failed(
                ctx.call,
                CallError::MsrValue {
                    index,
                    value,
                    write_mask: e.write_mask,
                    refused: e.refused,
                },
                rule,
                resource,
            ),
            Ok(stored) => {
                if v.set_msr(index, stored) {
                    Outcome::new(ctx.call, Effect::Allow, rule, resource)
                } else {
                    Outcome::failed(ctx.call, CallError::MsrStoreFull { index }, rule, resource)
                }
            }
        },
        _ => Outcome::failed(
            ctx.call,
            CallError::MsrDenied {
                index,
                access: Access::Write,
                phase: v.phase,
            },
            rule,
            resource,
        ),
    }
}

fn get_msr<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState, index: u32) -> Outcome {
    let resource = Resource::Msr(index);
    let d = decide_msr(ctx.policy, ctx.kind, v.phase, Access::Read, index);
    let rule = d.rule.map(|r| r.id);
    match (d.verdict, d.rule) {
        (Verdict::Ignore, _) => Outcome::new(ctx.call, Effect::Ignore, rule, resource),
        (Verdict::Allow, Some(r)) => {
            let seen =
                msr_read_view(r.msr_constraint(), v.msr(index).unwrap_or(0)) & ctx.pc.read_mask;
            Outcome {
                out: [seen, 0, 0, 0],
                ..Outcome::new(ctx.call, Effect::Allow, rule, resource)
            }
        }
        _ => Outcome::failed(
            ctx.call,
            CallError::MsrDenied {
                index,
                access: Access::Read,
                phase: v.phase,
            },
            rule,
            resource,
        ),
    }
}

/// The first register where the host's proposal was replaced.
#[derive(Clone, Copy)]
struct Violation {
    entry: CpuidEntry,
    reg: Register,
    host: u32,
    effective: u32,
    rule: Option<RuleId>,
}

fn set_cpuid<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, table: &mut CpuidTable) -> Outcome {
    // Duplicates make the proposal ambiguous.
    for (i, e) in table.iter().enumerate() {
        if table
            .iter()
            .skip(i.saturating_add(1))
            .any(|o| o.is(e.leaf, e.subleaf))
        {
            return ctx.fail(CallError::CpuidDuplicate {
                leaf: e.leaf,
                subleaf: e.subleaf,
            });
        }
    }
    if v.phase != Phase::Setup {
        // After the first run, only the current table may be sent again.
        let mut proposed = table.clone();
        sort_table(&mut proposed);
        let mut current = v.cpuid.clone();
        sort_table(&mut current);
        if proposed == current {
            return Outcome {
                out: [current.len() as u64, 0, 0, 0],
                ..ctx.ok()
            };
        }
        let differs = proposed
            .iter()
            .zip(current.iter())
            .find(|(a, b)| a != b)
            .map(|(a, _)| *a)
            .or_else(|| proposed.get(current.len()).copied())
            .or_else(|| current.get(proposed.len()).copied())
            .unwrap_or_default();
        return Outcome::failed(
            ctx.call,
            CallError::CpuidChanged {
                leaf: differs.leaf,
                subleaf: differs.subleaf,
            },
            ctx.rule,
            Resource::Cpuid {
                leaf: differs.leaf,
                subleaf: differs.subleaf,
            },
        );
    }

    // The effective table covers the host's entries and every base entry
    // (a base leaf the host leaves out is proposed as zeros).
    let mut effective = CpuidTable::new();
    let extra = ctx
        .cpu
        .base
        .iter()
        .filter(|b| find_entry(table, b.leaf, b.subleaf).is_none())
        .count();
    let count = table.len().saturating_add(extra);
    if count > MAX_CPUID_ENTRIES {
        return ctx.fail(CallError::CpuidTooLarge {
            count: count as u64,
        });
    }
    let keys = table.iter().map(|e| (e.leaf, e.subleaf)).chain(
        ctx.cpu
            .base
            .iter()
            .filter(|b| find_entry(table, b.leaf, b.subleaf).is_none())
            .map(|b| (b.leaf, b.subleaf)),
    );
    let mut first: Option<Violation> = None;
    let mut replaced = 0u32;
    for (leaf, subleaf) in keys {
        let host = find_entry(table, leaf, subleaf)
            .copied()
            .unwrap_or(CpuidEntry::zero(leaf, subleaf));
        let base = ctx.cpu.base_entry(leaf, subleaf);
        let d = decide_cpuid(ctx.policy, ctx.kind, v.phase, leaf, subleaf);
        let controls = cpuid_controls(&d);
        let mut e = CpuidEntry::zero(leaf, subleaf);
        for (reg, c) in Register::ALL.into_iter().zip(controls) {
            let m = merge_register(base.reg(reg), host.reg(reg), c);
            e.set_reg(reg, m.effective);
            // An `ignore` rule keeps the base silently.
            if m.violations != 0 && d.verdict != Verdict::Ignore {
                replaced = replaced.wrapping_add(1);
                if first.is_none() {
                    first = Some(Violation {
                        entry: e,
                        reg,
                        host: host.reg(reg),
                        effective: m.effective,
                        rule: d.rule.map(|r| r.id),
                    });
                }
            }
        }
        // Capacity was checked above.
        let _ = effective.push(e);
    }
    sort_table(&mut effective);
    let report = |f: &Violation| -> [u64; 4] {
        [
            effective.len() as u64,
            u64::from(replaced),
            u64::from(f.entry.leaf) << 32 | u64::from(f.entry.subleaf),
            (f.reg as u64) << 32 | u64::from(f.host ^ f.effective),
        ]
    };
    match first {
        None => {
            v.cpuid = effective.clone();
            v.cpuid_set = true;
            *table = effective;
            Outcome {
                out: [table.len() as u64, 0, 0, 0],
                ..ctx.ok()
            }
        }
        Some(f) => {
            let resource = Resource::Cpuid {
                leaf: f.entry.leaf,
                subleaf: f.entry.subleaf,
            };
            let out = report(&f);
            let o = match ctx.policy.violation_mode() {
                ViolationMode::Filter => {
                    v.cpuid = effective.clone();
                    v.cpuid_set = true;
                    Outcome {
                        out,
                        replaced,
                        ..Outcome::new(ctx.call, Effect::Filter, f.rule, resource)
                    }
                }
                ViolationMode::Reject => Outcome {
                    out,
                    replaced,
                    ..Outcome::failed(
                        ctx.call,
                        CallError::CpuidRejected {
                            leaf: f.entry.leaf,
                            subleaf: f.entry.subleaf,
                            reg: f.reg,
                            host: f.host,
                            effective: f.effective,
                        },
                        f.rule,
                        resource,
                    )
                },
            };
            // Either way the host gets the table the policy gives.
            *table = effective;
            o
        }
    }
}
