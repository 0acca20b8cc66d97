//! The `listing` module (being written).
