//! The `path` module (being written).
