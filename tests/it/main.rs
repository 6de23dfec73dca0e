//! The one integration-test binary of kubus: every module drives the public surfaces (the CLI's `run`, the
//! library, the real binary where a process must die) over copies of the sample project.

mod support;

mod attacks;
mod cluster;
mod crash;
mod demo;
mod disclosure;
mod errors;
mod ingest;
mod measures;
mod notices;
mod outputs;
mod realdata;
mod reports;
mod rollups;
mod schemas;
mod server;
mod silent;
mod storage;
mod tidy;
