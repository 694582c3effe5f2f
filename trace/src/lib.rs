//! pvgate-trace (to be written).
