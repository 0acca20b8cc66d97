//! The `framing` module (being written).
