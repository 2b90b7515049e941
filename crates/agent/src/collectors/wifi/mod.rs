//! `wifi` collector (being written).
