//! `disk_io` collector (being written).
