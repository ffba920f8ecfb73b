//! Typed errors, one per boundary.
