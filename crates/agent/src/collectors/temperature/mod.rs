//! `temperature` collector (being written).
