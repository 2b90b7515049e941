//! `process_list` collector (being written).
