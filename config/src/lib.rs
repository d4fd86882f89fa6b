//! The configuration of eda (being written).
