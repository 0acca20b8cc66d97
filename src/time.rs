//! The `time` module (being written).
