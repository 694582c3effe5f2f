//! A vCPU: the one accessor that validates a handle and locks it
//! ([`lock`]), its lifecycle ([`lifecycle`]), and its calls ([`dispatch`]:
//! decided by the gate, then carried out by a handler), and the guest
//! exits it completes itself ([`exit`]).

pub(crate) mod dispatch;
pub(crate) mod exit;
pub(crate) mod lifecycle;
pub(crate) mod lock;
