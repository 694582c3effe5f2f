//! A vCPU: the one accessor that validates a handle and locks it
//! ([`lock`]), its lifecycle ([`lifecycle`]), and its calls ([`route`] to their
//! handler, [`dispatch`]: decided by the gate, then carried out), and the guest
//! exits it completes itself ([`exit`]).

pub(crate) mod dispatch;
pub(crate) mod exit;
pub(crate) mod lifecycle;
pub(crate) mod lock;
pub(crate) mod route;
