//! The product upload template: which columns a file may have and what goes in them.
//!
//! Both modes share the columns: `sku` (required), the text attributes, `mrp`, and one
//! `mrp_<channel>` column per marketplace channel (the code lowercased, e.g.
//! `mrp_amazon`). In update mode a blank cell leaves the value as it was, a column left
//! out of the file is never touched, and the clear token (`#CLEAR`) clears an optional value.

use super::ids::ChannelCode;
use super::product::TextField;

/// The cell value that clears an optional attribute in update mode.
pub const CLEAR_TOKEN: &str = "#CLEAR";

/// The SKU column.
pub const SKU_COLUMN: &str = "sku";

/// The MRP column.
pub const MRP_COLUMN: &str = "mrp";

/// Prefix of the per-channel MRP columns.
const CHANNEL_MRP_PREFIX: &str = "mrp_";

/// What an upload does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMode {
    /// Every row is a new SKU.
    Create,
    /// Every row names an existing SKU; only non-blank cells change.
    Update,
}

/// One column of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateColumn {
    /// Header name.
    pub name: String,
    /// Whether the file must have it.
    pub required: bool,
    /// What goes in it.
    pub description: String,
}

/// The columns of the template for `mode`, given the marketplace channels that exist.
pub fn product_template(mode: UploadMode, marketplaces: &[ChannelCode]) -> Vec<TemplateColumn> {
    let blank_means = match mode {
        UploadMode::Create => "blank when not known".to_string(),
        UploadMode::Update => format!("blank keeps the value, {CLEAR_TOKEN} clears it"),
    };
    let sku_description = match mode {
        UploadMode::Create => {
            "the new SKU, unique for the client: 1-64 of letters, digits, `-`, `_`, `.`, `/`"
        }
        UploadMode::Update => {
            "an existing SKU of the client; the file needs at least one more column to change"
        }
    };

    let mut columns = vec![TemplateColumn {
        name: SKU_COLUMN.to_string(),
        required: true,
        description: sku_description.to_string(),
    }];
    for field in TextField::ALL {
        let what = match field {
            TextField::Name => "display name",
            TextField::Style => "style or design number",
            TextField::Category => "category, e.g. kurta",
            TextField::Color => "colour",
            TextField::Size => "size",
        };
        columns.push(TemplateColumn {
            name: field.name().to_string(),
            required: false,
            description: format!("{what}; {blank_means}"),
        });
    }
    columns.push(TemplateColumn {
        name: MRP_COLUMN.to_string(),
        required: false,
        description: format!(
            "maximum retail price, a positive decimal with at most two decimals and no \
             thousands separator (1299 or 1299.50); {blank_means}"
        ),
    });
    for channel in marketplaces {
        columns.push(TemplateColumn {
            name: channel_mrp_column(channel),
            required: false,
            description: format!("MRP on {channel} where it differs from `mrp`; {blank_means}"),
        });
    }
    columns
}

/// The header line of a template.
pub fn header_line(columns: &[TemplateColumn]) -> String {
    let names: Vec<&str> = columns.iter().map(|column| column.name.as_str()).collect();
    names.join(",")
}

/// The column of a channel's MRP, e.g. `mrp_amazon`.
pub fn channel_mrp_column(channel: &ChannelCode) -> String {
    format!(
        "{CHANNEL_MRP_PREFIX}{}",
        channel.as_str().to_ascii_lowercase()
    )
}

/// The marketplace a lowercase column name is the MRP column of, if any.
pub fn channel_of_mrp_column<'a>(
    column: &str,
    marketplaces: &'a [ChannelCode],
) -> Option<&'a ChannelCode> {
    let code = column.strip_prefix(CHANNEL_MRP_PREFIX)?;
    marketplaces
        .iter()
        .find(|channel| channel.as_str().eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marketplaces() -> Vec<ChannelCode> {
        ["AMAZON", "AMAZON_FBA"]
            .map(|code| ChannelCode::from_stored(code.into()))
            .to_vec()
    }

    #[test]
    fn the_template_has_one_mrp_column_per_marketplace() {
        let columns = product_template(UploadMode::Create, &marketplaces());

        assert_eq!(
            header_line(&columns),
            "sku,name,style,category,color,size,mrp,mrp_amazon,mrp_amazon_fba"
        );
        assert!(columns[0].required);
        assert!(columns[1..].iter().all(|column| !column.required));
    }

    #[test]
    fn update_columns_explain_the_clear_token() {
        let columns = product_template(UploadMode::Update, &marketplaces());

        assert!(columns[1].description.contains(CLEAR_TOKEN));
    }

    #[test]
    fn mrp_columns_map_back_to_their_channel() {
        let marketplaces = marketplaces();

        let found = channel_of_mrp_column("mrp_amazon_fba", &marketplaces);

        assert_eq!(found.map(ChannelCode::as_str), Some("AMAZON_FBA"));
        assert_eq!(channel_of_mrp_column("mrp_myntra", &marketplaces), None);
        assert_eq!(channel_of_mrp_column("mrp", &marketplaces), None);
    }
}
