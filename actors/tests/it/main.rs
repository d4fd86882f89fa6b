//! One integration-test binary for eda-actors: real actors and real servers on loopback. Each
//! module covers one area. (The decoders' fixture tests live with the pure core, in eda-core.)

mod schema_registry;
mod supervisor;
