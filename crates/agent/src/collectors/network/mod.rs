//! `network` collector (being written).
