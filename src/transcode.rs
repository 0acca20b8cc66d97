//! The `transcode` module (being written).
