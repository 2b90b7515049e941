//! `disk` collector (being written).
