//! The `hostport` module (being written).
