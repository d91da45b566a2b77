//! Proto messages to domain values (checked, naming the field at fault) and back.

use std::collections::BTreeMap;

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_runtime::Error;
use kosha_runtime::time::to_timestamp;
use prost_types::FieldMask;

use crate::domain::product::text_problem;
use crate::domain::{
    Channel, ChannelCode, ChannelKind, Client, Listing, Mrp, Product, ProductAttributes,
    ProductPatch, TextField, UploadMode,
};

// === to proto ===

pub fn client_to_pb(client: Client) -> pb::Client {
    pb::Client {
        client_id: client.client_id.to_string(),
        display_name: client.display_name,
        create_time: Some(to_timestamp(client.create_time)),
    }
}

pub fn channel_to_pb(channel: Channel) -> pb::Channel {
    let kind = match channel.kind {
        ChannelKind::Marketplace => pb::ChannelKind::Marketplace,
        ChannelKind::B2b => pb::ChannelKind::B2b,
    };
    pb::Channel {
        code: channel.code.to_string(),
        display_name: channel.display_name,
        kind: kind.into(),
        // Built-in channels (INTERNAL) were never created by anyone: no time is sent for
        // them rather than the epoch they are stored with.
        create_time: (channel.create_time > 0).then(|| to_timestamp(channel.create_time)),
    }
}

pub fn product_to_pb(product: Product) -> pb::Product {
    let attributes = product.attributes;
    pb::Product {
        client_id: product.client_id.to_string(),
        sku: product.sku.to_string(),
        name: attributes.name,
        style: attributes.style,
        category: attributes.category,
        color: attributes.color,
        size: attributes.size,
        mrp: attributes.mrp_opt.map(Mrp::to_text).unwrap_or_default(),
        channel_mrp: attributes
            .channel_mrp
            .into_iter()
            .map(|(channel, mrp)| (channel.to_string(), mrp.to_text()))
            .collect(),
        active: product.active,
        create_time: Some(to_timestamp(product.create_time)),
        update_time: Some(to_timestamp(product.update_time)),
    }
}

pub fn listing_to_pb(listing: Listing) -> pb::Listing {
    pb::Listing {
        client_id: listing.client_id.to_string(),
        channel: listing.channel.to_string(),
        marketplace_sku: listing.marketplace_sku.to_string(),
        sku: listing.sku.to_string(),
        update_time: Some(to_timestamp(listing.update_time)),
    }
}

// === from proto ===

pub fn channel_kind(kind: i32) -> Result<ChannelKind, Error> {
    match pb::ChannelKind::try_from(kind) {
        Ok(pb::ChannelKind::Marketplace) => Ok(ChannelKind::Marketplace),
        Ok(pb::ChannelKind::B2b) => Ok(ChannelKind::B2b),
        Ok(pb::ChannelKind::Unspecified) | Err(_) => Err(Error::invalid(
            "kind",
            "choose CHANNEL_KIND_MARKETPLACE or CHANNEL_KIND_B2B",
        )),
    }
}

pub fn upload_mode(mode: i32) -> Result<UploadMode, Error> {
    match pb::UploadMode::try_from(mode) {
        Ok(pb::UploadMode::Create) => Ok(UploadMode::Create),
        Ok(pb::UploadMode::Update) => Ok(UploadMode::Update),
        Ok(pb::UploadMode::Unspecified) | Err(_) => Err(Error::invalid(
            "mode",
            "choose UPLOAD_MODE_CREATE or UPLOAD_MODE_UPDATE",
        )),
    }
}

/// The attributes of a product to create.
pub fn attributes_of(product: &pb::Product) -> Result<ProductAttributes, Error> {
    let mut attributes = ProductAttributes::default();
    for field in TextField::ALL {
        *attributes.text_mut(field) = text_of(product, field)?;
    }
    if !product.mrp.is_empty() {
        attributes.mrp_opt = Some(mrp_of("product.mrp", &product.mrp)?);
    }
    attributes.channel_mrp = channel_mrp_of(product)?;
    Ok(attributes)
}

/// The change an update asks for: the fields the mask names, or with no mask, every
/// non-empty field (channel prices then merged into the existing ones).
pub fn patch_of(
    product: &pb::Product,
    mask_opt: Option<&FieldMask>,
) -> Result<ProductPatch, Error> {
    let mut patch = ProductPatch::default();
    let paths = mask_opt
        .map(|mask| mask.paths.as_slice())
        .unwrap_or_default();

    if paths.is_empty() {
        for field in TextField::ALL {
            let value = text_of(product, field)?;
            if !value.is_empty() {
                patch.texts.push((field, value));
            }
        }
        if !product.mrp.is_empty() {
            patch.mrp_opt = Some(Some(mrp_of("product.mrp", &product.mrp)?));
        }
        patch.channel_mrp = channel_mrp_of(product)?
            .into_iter()
            .map(|(channel, mrp)| (channel, Some(mrp)))
            .collect();
        if patch.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "nothing to change: set a field, or name it in `update_mask` to clear it",
            ));
        }
        return Ok(patch);
    }

    for path in paths {
        if let Some(field) = TextField::from_name(path) {
            patch.texts.push((field, text_of(product, field)?));
            continue;
        }
        match path.as_str() {
            "mrp" if product.mrp.is_empty() => patch.mrp_opt = Some(None),
            "mrp" => patch.mrp_opt = Some(Some(mrp_of("product.mrp", &product.mrp)?)),
            "channel_mrp" => {
                patch.replace_channel_mrp = true;
                patch.channel_mrp = channel_mrp_of(product)?
                    .into_iter()
                    .map(|(channel, mrp)| (channel, Some(mrp)))
                    .collect();
            }
            other => {
                return Err(Error::invalid(
                    "update_mask",
                    format!(
                        "`{other}` cannot be changed; paths are name, style, category, color, \
                         size, mrp and channel_mrp"
                    ),
                ));
            }
        }
    }
    Ok(patch)
}

fn text_of(product: &pb::Product, field: TextField) -> Result<String, Error> {
    let value = match field {
        TextField::Name => &product.name,
        TextField::Style => &product.style,
        TextField::Category => &product.category,
        TextField::Color => &product.color,
        TextField::Size => &product.size,
    };
    let value = value.trim();
    match text_problem(value) {
        Some(problem) => Err(Error::invalid(format!("product.{}", field.name()), problem)),
        None => Ok(value.to_string()),
    }
}

fn mrp_of(field: &str, text: &str) -> Result<Mrp, Error> {
    Mrp::parse(text.trim()).map_err(|problem| Error::invalid(field, problem.message()))
}

fn channel_mrp_of(product: &pb::Product) -> Result<BTreeMap<ChannelCode, Mrp>, Error> {
    let mut prices = BTreeMap::new();
    for (code, mrp) in &product.channel_mrp {
        let field = format!("product.channel_mrp[{code}]");
        let channel = ChannelCode::parse(&field, code)?;
        prices.insert(channel, mrp_of(&field, mrp)?);
    }
    Ok(prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(paths: &[&str]) -> FieldMask {
        FieldMask {
            paths: paths.iter().map(|path| path.to_string()).collect(),
        }
    }

    #[test]
    fn without_a_mask_only_set_fields_change() {
        let product = pb::Product {
            color: "Blue".into(),
            mrp: "999".into(),
            ..Default::default()
        };

        let patch = patch_of(&product, None).unwrap();

        assert_eq!(patch.texts, [(TextField::Color, "Blue".to_string())]);
        assert_eq!(patch.mrp_opt, Some(Some(Mrp::from_paise(99_900))));
        assert!(!patch.replace_channel_mrp);
    }

    #[test]
    fn a_masked_empty_field_is_cleared() {
        let product = pb::Product::default();

        let patch = patch_of(&product, Some(&mask(&["name", "mrp", "channel_mrp"]))).unwrap();

        assert_eq!(patch.texts, [(TextField::Name, String::new())]);
        assert_eq!(patch.mrp_opt, Some(None));
        assert!(patch.replace_channel_mrp && patch.channel_mrp.is_empty());
    }

    #[test]
    fn bad_masks_and_values_name_their_field() {
        let product = pb::Product {
            mrp: "1,800".into(),
            ..Default::default()
        };

        let unknown_path = patch_of(&product, Some(&mask(&["sku"]))).unwrap_err();
        let bad_mrp = patch_of(&product, None).unwrap_err();
        let nothing = patch_of(&pb::Product::default(), None).unwrap_err();

        assert!(
            unknown_path.to_string().contains("update_mask"),
            "{unknown_path}"
        );
        assert!(bad_mrp.to_string().contains("product.mrp"), "{bad_mrp}");
        assert!(
            nothing.to_string().contains("nothing to change"),
            "{nothing}"
        );
    }

    #[test]
    fn channel_prices_need_valid_codes_and_amounts() {
        let mut product = pb::Product::default();
        product.channel_mrp.insert("amazon".into(), "100".into());
        let lowercase = attributes_of(&product).unwrap_err();
        product.channel_mrp.clear();
        product.channel_mrp.insert("AMAZON".into(), "0".into());
        let zero = attributes_of(&product).unwrap_err();

        assert!(
            lowercase
                .to_string()
                .contains("product.channel_mrp[amazon]"),
            "{lowercase}"
        );
        assert!(zero.to_string().contains("more than zero"), "{zero}");
    }
}
