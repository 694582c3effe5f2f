//! The VM table: a slot per VM ([`slot`]: its state word, read through
//! `meta`, lifecycle lock and vCPUs), the handles that name VMs and vCPUs ([`handle`]), and a
//! VM's lifecycle ([`lifecycle`]).

pub(crate) mod handle;
pub(crate) mod lifecycle;
mod meta;
pub(crate) mod slot;
#[cfg(test)]
mod wrap_tests;
