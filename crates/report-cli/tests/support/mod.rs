//! Shared by the runner tests (each test file uses part of it).
#![allow(dead_code)]

pub mod jobs;
pub mod postgres;
