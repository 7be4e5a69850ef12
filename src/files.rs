//! Uploaded files on disk: where their bytes live, what type they really are (sniffed from the
//! bytes), and their thumbnails. No HTTP and no SQL here.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Longer side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 320;
/// Bytes of a file's start kept for sniffing its type.
pub const SNIFF_BYTES: usize = 8192;

/// Paths of the files directory.
#[derive(Debug, Clone)]
pub struct Disk {
    dir: PathBuf,
}

impl Disk {
    /// The files directory `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Disk {
        Disk { dir }
    }

    /// Creates the directory if needed.
    pub fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a file's bytes are.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Where a file's thumbnail is.
    pub fn thumbnail(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.thumb"))
    }

    /// A new temporary path for an upload in progress.
    pub fn temp(&self) -> crate::error::Result<PathBuf> {
        Ok(self.dir.join(format!("tmp-{}", new_id()?)))
    }

    /// Gives the finished upload at `temp` its file's name, durably: the rename counts only once
    /// the directory holding the new name is synced. Blocking: call it off the runtime.
    pub fn keep(&self, temp: &Path, id: &str) -> std::io::Result<()> {
        std::fs::rename(temp, self.path(id))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Removes a file's bytes and thumbnail (missing ones are fine).
    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_file(self.path(id));
        let _ = std::fs::remove_file(self.thumbnail(id));
    }
}

/// A new unguessable file id: 32 hex characters from the OS random source.
pub fn new_id() -> crate::error::Result<String> {
    crate::random::random_hex(16)
}

/// Whether `id` has the shape of a file id (so it can be used as a path).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The MIME type of a file from its first bytes: a known signature, else UTF-8 text, else
/// `application/octet-stream`. What the client claimed is never used. Bytes that are valid UTF-8
/// but hold control characters text never has (NUL and the others WHATWG's MIME sniffing calls
/// binary data bytes) are binary, not text.
pub fn sniff(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_string();
    }
    let binary_byte = |b: &u8| matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F);
    if head.iter().any(binary_byte) {
        return "application/octet-stream".to_string();
    }
    // A multi-byte character may be cut at the end of the sniffed prefix.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    if text && !head.is_empty() {
        "text/plain; charset=utf-8".to_string()
    } else {
        "application/octet-stream".to_string()
    }
}

/// Whether files of this type get a thumbnail.
pub fn has_thumbnail(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/webp" | "image/gif"
    )
}

/// A reader of the image at `path` that refuses sides past 16,384 pixels and allocations past
/// `max_alloc` bytes.
fn image_reader(
    path: &Path,
    max_alloc: u64,
) -> image::ImageResult<ImageReader<std::io::BufReader<std::fs::File>>> {
    let mut reader = ImageReader::open(path)?.with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    Ok(reader)
}

/// The bytes of the image at `path` once decoded, read from its header alone. Blocking.
pub fn decoded_size(path: &Path) -> image::ImageResult<u64> {
    Ok(image_reader(path, u64::MAX)?.into_decoder()?.total_bytes())
}

/// A thumbnail of the image at `path`, at most [`THUMBNAIL_SIZE`] on its longer side (never
/// enlarged), as (bytes, MIME type): PNG when the image has transparency, else JPEG. A GIF gives
/// its first frame. The decoder allocates at most `max_alloc` bytes. Blocking: run it off the
/// async runtime.
pub fn make_thumbnail(path: &Path, max_alloc: u64) -> image::ImageResult<(Vec<u8>, &'static str)> {
    let img = image_reader(path, max_alloc)?.decode()?;
    let small = if img.width() > THUMBNAIL_SIZE || img.height() > THUMBNAIL_SIZE {
        img.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    } else {
        img
    };
    let mut out = Cursor::new(Vec::new());
    if small.color().has_alpha() {
        small.write_to(&mut out, ImageFormat::Png)?;
        Ok((out.into_inner(), "image/png"))
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8()).write_to(&mut out, ImageFormat::Jpeg)?;
        Ok((out.into_inner(), "image/jpeg"))
    }
}

/// A file name safe to keep as a title: no directories, no control characters, at most 255
/// characters; "file" when nothing is left.
pub fn clean_title(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".to_string()
    } else {
        cleaned.to_string()
    }
}

/// `Content-Disposition` for a download: inline for media the browser shows safely, attachment
/// otherwise; the name as an ASCII fallback and as RFC 5987 UTF-8.
pub fn content_disposition(mime: &str, title: &str) -> String {
    let inline = mime.starts_with("image/")
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
        || mime == "application/pdf";
    let ascii: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = form_urlencoded::byte_serialize(title.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(sniff(b"%PDF-1.7"), "application/pdf");
        assert_eq!(
            sniff("plain text, caf\u{e9}".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(sniff(&[0, 159, 146, 150, 1, 2]), "application/octet-stream");
    }

    #[test]
    fn titles_lose_directories_and_control_characters() {
        assert_eq!(clean_title("../../etc/passwd"), "passwd");
        assert_eq!(clean_title("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(clean_title("a\nb\u{7}.txt"), "ab.txt");
        assert_eq!(clean_title(""), "file");
        assert_eq!(clean_title(".."), "file");
    }

    #[test]
    fn dispositions_are_safe_for_any_name() {
        let d = content_disposition("text/plain", "naïve \"quote\";\r\n.txt");
        assert!(d.starts_with("attachment; filename=\""));
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(
            d.contains("filename*=UTF-8''na%C3%AFve%20%22quote%22%3B%0D%0A.txt"),
            "{d}"
        );
        assert!(content_disposition("image/png", "x.png").starts_with("inline"));
    }

    #[test]
    fn ids_are_hex_and_checked() {
        let id = new_id().unwrap();
        assert!(valid_id(&id));
        assert!(!valid_id("../secret"));
        assert!(!valid_id(&id.to_uppercase()));
    }
}
