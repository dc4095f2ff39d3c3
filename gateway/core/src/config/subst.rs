//! `${VAR}` and `${VAR:-default}` substitution in configuration text.
