//! The `reply` module (being written).
