"""The synthetic landscape (512x384) the real-frontend tests show in the editor; also the picture of
docs/images/drag_point_editor.png (see dev/screenshot_point_editor.mjs)."""
import random

IMAGE_SIZE = (512, 384)


def write_picture(path):
    """A small synthetic landscape, so the editor has something real-looking to show."""
    from PIL import Image, ImageDraw, ImageFilter  # with ComfyUI's requirements, like the tests that use it

    width, height = IMAGE_SIZE
    rng = random.Random(3)
    img = Image.new("RGB", IMAGE_SIZE)
    draw = ImageDraw.Draw(img)
    for y in range(240):  # evening sky
        t = y / 240
        draw.line([(0, y), (width, y)], fill=(int(70 + 170 * t), int(110 + 90 * t), int(190 - 40 * t)))
    glow = Image.new("L", IMAGE_SIZE, 0)
    ImageDraw.Draw(glow).ellipse((330, 20, 470, 160), fill=140)
    img = Image.composite(Image.new("RGB", IMAGE_SIZE, (255, 225, 150)), img, glow.filter(ImageFilter.GaussianBlur(30)))
    draw = ImageDraw.Draw(img)
    draw.ellipse((372, 62, 428, 118), fill=(255, 236, 170))
    for peak, snow, color in [((-20, 240, 110, 120, 250), (90, 118, 110, 120, 130, 140, 100, 150), (92, 104, 140)),
                              ((160, 240, 300, 110, 480), (280, 128, 300, 110, 322, 130, 300, 140), (110, 118, 155)),
                              ((380, 240, 470, 160, 560), None, (100, 112, 150))]:
        x0, base, xp, yp, x1 = peak
        draw.polygon([(x0, base), (xp, yp), (x1, base)], fill=color)
        if snow:
            draw.polygon(list(zip(snow[::2], snow[1::2])), fill=(238, 240, 247))
    for y in range(230, height):  # meadow
        t = (y - 230) / (height - 230)
        draw.line([(0, y), (width, y)], fill=(int(110 - 40 * t), int(160 - 50 * t), int(70 - 30 * t)))
    draw.ellipse((250, 280, 500, 350), fill=(80, 130, 190))  # lake
    draw.ellipse((270, 290, 420, 320), fill=(120, 170, 215))
    draw.rectangle((110, 235, 195, 300), fill=(214, 94, 74))  # house
    draw.polygon([(100, 240), (152, 196), (205, 240)], fill=(120, 58, 50))
    draw.rectangle((140, 262, 160, 300), fill=(92, 60, 40))
    draw.rectangle((170, 250, 188, 266), fill=(250, 230, 160))
    for x, y, s in [(40, 300, 1.0), (70, 320, 0.8), (225, 305, 0.9), (470, 285, 0.7)]:  # trees
        draw.rectangle((x - 4 * s, y, x + 4 * s, y + 30 * s), fill=(90, 60, 35))
        draw.ellipse((x - 22 * s, y - 45 * s, x + 22 * s, y + 8 * s), fill=(46, 110, 56))
    for _ in range(70):  # flowers
        x, y = rng.randint(0, width), rng.randint(300, height)
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=rng.choice([(250, 240, 120), (245, 245, 245), (240, 150, 180)]))
    img.filter(ImageFilter.GaussianBlur(0.6)).save(path)
