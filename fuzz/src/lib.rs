//! Support for foolock's fuzz targets: the properties they check ([`checks`]), which the
//! property tests on stable share.

pub mod checks;
