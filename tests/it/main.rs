//! The one integration-test binary.

mod render;
