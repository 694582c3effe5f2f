//! pvgate-hyp (to be written).
#![no_std]
