//! Thumbnails: at most 320 px with the aspect ratio kept, and an animated GIF's first frame.

use image::Rgb;
use reqwest::StatusCode;

use super::{
    animated_gif, assert_scaled, fetch, jpeg, png, thumb_path, thumbnail_size, uploaded, webp,
};
use crate::helpers::spawn_app;

#[tokio::test]
async fn thumbnails_fit_320_and_keep_the_aspect_ratio() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let wide = uploaded(&app, "alice", "wide.png", png(800, 400)).await;
    let tall = uploaded(&app, "alice", "tall.jpg", jpeg(300, 900)).await;
    let lossless = uploaded(&app, "alice", "pic.webp", webp(640, 480)).await;
    let small = uploaded(&app, "alice", "small.png", png(100, 50)).await;

    // Assert
    assert_eq!(wide["mimeType"], "image/png");
    assert_scaled(thumbnail_size(&app, "alice", &wide).await, 800, 400);
    assert_eq!(tall["mimeType"], "image/jpeg");
    assert_scaled(thumbnail_size(&app, "alice", &tall).await, 300, 900);
    assert_eq!(lossless["mimeType"], "image/webp");
    assert_scaled(thumbnail_size(&app, "alice", &lossless).await, 640, 480);
    assert_eq!(small["mimeType"], "image/png");
    assert_eq!(thumbnail_size(&app, "alice", &small).await, (100, 50));
}

#[tokio::test]
async fn an_animated_gif_gets_a_thumbnail_of_its_first_frame() {
    // Arrange
    let app = spawn_app().await;
    let gif = uploaded(&app, "alice", "anim.gif", animated_gif(640, 480)).await;

    // Act
    let got = fetch(&app, "alice", &thumb_path(&gif["id"])).await;

    // Assert
    assert_eq!(gif["mimeType"], "image/gif");
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.header("content-type").starts_with("image/"));
    let thumb = image::load_from_memory(&got.body).unwrap().to_rgb8();
    assert_scaled(thumb.dimensions(), 640, 480);
    let Rgb([r, g, b]) = *thumb.get_pixel(thumb.width() / 2, thumb.height() / 2);
    assert!(
        r > 200 && g < 60 && b < 60,
        "the thumbnail shows the first (red) frame, not ({r}, {g}, {b})"
    );
}
