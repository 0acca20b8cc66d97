//! The `command` module (being written).
