//! One integration-test binary for eda-actors: real actors, and real servers on loopback.

mod supervisor;
