//! The one list of vendors. Everything that does something per vendor (the sandbox's
//! simulators and tables, the CLI's demo and dispatch, the cross-vendor tests and fuzzers)
//! matches exhaustively on [`Vendor`] or holds a [`PerVendor`], so a vendor added here is a
//! compile error everywhere it is not wired yet.

use std::fmt;
use std::str::FromStr;

/// The one list of vendors: calls the macro `$callback` with it, one entry a line,
/// `$(#[doc = "…"])* Variant = module;` (`module`: the vendor's lowercase name, as in
/// `report-<module>`, `specs/<module>.yaml` and the CLI's `reports <module>`). This crate makes
/// [`Vendor`] and [`PerVendor`] of it; the CLI its subcommands and dispatch, the cross-vendor
/// tests their per-vendor arms: each user declares a `macro_rules!` taking the list and passes
/// its name here.
#[macro_export]
macro_rules! for_each_vendor {
    ($callback:ident) => {
        $callback! {
            /// ONLYOFFICE DocSpace: customer operations report (one task per portal user).
            DocSpace = docspace;
            /// EvoVoice (ServiceStack): billing and the other report types.
            EvoVoice = evovoice;
            /// CloudBlue Commerce Marketplace API, Reporting and Data Export.
            CloudBlue = cloudblue;
            /// MetaKocka: asynchronous report printing.
            MetaKocka = metakocka;
            /// OFD.ru «ИС Отчеты».
            Ofd = ofd;
        }
    };
}

/// Declares [`Vendor`], its names and [`PerVendor`] from the list of [`for_each_vendor!`].
macro_rules! vendors {
    ($($(#[doc = $doc:literal])* $variant:ident = $module:ident;)+) => {
        /// The vendors of this workspace.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Vendor {
            $($(#[doc = $doc])* $variant,)+
        }

        impl Vendor {
            /// Every vendor, in a fixed order.
            pub const ALL: [Vendor; [$(stringify!($module)),+].len()] = [$(Vendor::$variant),+];

            /// The short lowercase name, as in the crate names `report-<name>` and the specs
            /// `specs/<name>.yaml`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Vendor::$variant => stringify!($module),)+
                }
            }
        }

        /// One value per vendor. A struct with a field per vendor (not an array indexed by
        /// position), so a new vendor cannot be left out of a table.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        #[allow(non_snake_case)]
        pub struct PerVendor<T> {
            $(#[doc = concat!("The value of `", stringify!($module), "`.")] pub $variant: T,)+
        }

        impl<T> PerVendor<T> {
            /// The value of each vendor, made by `f`.
            pub fn from_fn(mut f: impl FnMut(Vendor) -> T) -> Self {
                PerVendor { $($variant: f(Vendor::$variant),)+ }
            }

            /// The value of `vendor`.
            pub fn get(&self, vendor: Vendor) -> &T {
                match vendor {
                    $(Vendor::$variant => &self.$variant,)+
                }
            }
        }
    };
}

for_each_vendor!(vendors);

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown vendor name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownVendor(pub String);

impl fmt::Display for UnknownVendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Vendor::ALL.iter().map(|v| v.name()).collect();
        write!(
            f,
            "unknown vendor {:?} (expected one of {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownVendor {}

impl FromStr for Vendor {
    type Err = UnknownVendor;

    /// Parses a vendor name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownVendor(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tables_follow_the_list() {
        for vendor in Vendor::ALL {
            assert_eq!(vendor.name().parse::<Vendor>(), Ok(vendor));
            assert_eq!(vendor.name().to_uppercase().parse::<Vendor>(), Ok(vendor));
        }
        let table = PerVendor::from_fn(Vendor::name);
        for vendor in Vendor::ALL {
            assert_eq!(*table.get(vendor), vendor.name());
        }
        let err = "acme".parse::<Vendor>().unwrap_err().to_string();
        assert!(
            err.contains("docspace, evovoice, cloudblue, metakocka, ofd"),
            "{err}"
        );
    }
}
