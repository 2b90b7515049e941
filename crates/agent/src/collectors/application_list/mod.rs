//! `application_list` collector (being written).
