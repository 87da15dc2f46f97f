//! Lenient string enums: vendors add states and types without notice, so a value this crate
//! does not know must be kept, not rejected.

/// Declares a string enum with the known values and an `Unknown(String)` catch-all.
///
/// The type serializes to and from the vendor's string, implements `Display`, `FromStr`
/// (never failing), `Clone`, `Debug`, `PartialEq`, `Eq`, `Hash` and `schemars::JsonSchema`
/// (the calling crate needs `serde` and `schemars`), so generated code can use it through
/// progenitor's `with_replacement`.
///
/// ```
/// report_core::lenient_enum! {
///     /// A report state.
///     pub enum State {
///         /// Waiting.
///         Todo = "Todo",
///         /// Finished.
///         Done = "Done",
///     }
/// }
/// assert_eq!("Done".parse::<State>().unwrap(), State::Done);
/// assert_eq!("Archived".parse::<State>().unwrap(), State::Unknown("Archived".into()));
/// assert_eq!(State::Unknown("Archived".into()).to_string(), "Archived");
/// ```
#[macro_export]
macro_rules! lenient_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The vendor's string for this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Unknown(s) => s.as_str(),
                }
            }

            /// Every known value.
            pub const KNOWN: &'static [$name] = &[$( $name::$variant ),+];
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Ok(match s {
                    $( $text => $name::$variant, )+
                    other => $name::Unknown(other.to_string()),
                })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::string::String as ::serde::Deserialize>::deserialize(d)?;
                Ok(s.parse().unwrap_or_else(|never: ::std::convert::Infallible| match never {}))
            }
        }

        $crate::string_json_schema!($name);
    };
}
