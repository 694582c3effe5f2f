//! VM and vCPU handles: how a generation, a VM slot and a vCPU index are
//! packed into the 64-bit values the host holds.

/// A VM handle: generation in bits 63:32, slot in bits 15:0. Never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmHandle(pub u64);

/// A vCPU handle: VM generation in bits 63:32, bit 31 set (so a vCPU
/// handle is never a VM handle), VM slot in bits 30:16, vCPU index in bits
/// 15:0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VcpuHandle(pub u64);

impl VmHandle {
    pub(crate) const fn new(generation: u32, slot: usize) -> VmHandle {
        VmHandle((generation as u64) << 32 | (slot as u64 & 0xffff))
    }

    pub(crate) fn split(self) -> Option<(u32, usize)> {
        if self.0 >> 16 & 0xffff != 0 {
            return None;
        }
        Some(((self.0 >> 32) as u32, (self.0 & 0xffff) as usize))
    }
}

/// Bit 31 of every vCPU handle.
const VCPU_TAG: u64 = 1 << 31;

impl VcpuHandle {
    pub(crate) const fn new(generation: u32, slot: usize, index: usize) -> VcpuHandle {
        VcpuHandle(
            (generation as u64) << 32
                | VCPU_TAG
                | (slot as u64 & 0x7fff) << 16
                | (index as u64 & 0xffff),
        )
    }

    /// (generation, slot, index); a handle without the vCPU tag gets a
    /// slot no table has, so it is refused like any bad handle.
    pub(crate) fn split(self) -> (u32, usize, usize) {
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

    /// The handle of vCPU `index` of the same VM (`index` below 2^16;
    /// whether it exists is for `lock_vcpu` to say).
    pub(crate) fn sibling(self, index: usize) -> VcpuHandle {
        let (generation, slot, _) = self.split();
        VcpuHandle::new(generation, slot, index)
    }
}
