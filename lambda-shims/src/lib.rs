//! Lambda shims (being written).
