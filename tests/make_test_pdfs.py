#!/usr/bin/env python3
"""make_test_pdfs.py OUTDIR - writes small PDFs for the ingest tests, with
correct cross-reference tables (so poppler reads them without repairs):

  text.pdf       6 pages: running header "ACME Corp Annual Report", footer
                 "Page N of 6", a hyphenated word across lines, body text
  image.pdf      2 pages that only draw an image (no text: "scanned")
  encrypted.pdf  standard security handler (RC4, R2) whose user password is
                 not empty: readers must ask for a password
  corrupt.pdf    a PDF header followed by garbage
  truncated.pdf  text.pdf cut in the middle of its first content stream
"""
import os
import sys
import zlib


def pdf(objects, trailer_extra=b""):
    """objects: list of bytes (object bodies, numbered from 1)."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, trailer_extra, xref)
    return bytes(out)


def stream(data, extra=b""):
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def text_pdf(n_pages=6):
    # 1 catalog, 2 pages, 3 font, then (page, content) pairs
    kids = []
    objs = [None, None, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    body_lines = [
        "Embedding models map text to vectors for retrieval. The quarterly",
        "results were strong, e.g. revenue grew in every region. Dr. Smith",
        "presented the docu-",
        "ment to the board on page %d of the report.",
        "Each section ends with a summary of the findings.",
    ]
    for p in range(1, n_pages + 1):
        lines = [(72, 760, 9, "ACME Corp Annual Report")]
        y = 700
        for l in body_lines:
            lines.append((72, y, 11, l % p if "%d" in l else l))
            y -= 14
        lines.append((72, y - 14, 11, "Unique paragraph number %d about topic %s." % (p, "xyz"[p % 3])))
        lines.append((260, 40, 9, "Page %d of %d" % (p, n_pages)))
        ops = b""
        for x, yy, size, t in lines:
            t = t.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops += b"BT /F1 %d Tf %d %d Td (%s) Tj ET\n" % (size, x, yy, t.encode("latin-1"))
        page_no = len(objs) + 1
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_no + 1))
        objs.append(stream(ops))
        kids.append(page_no)
    objs[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return pdf(objs)


def image_pdf(n_pages=2):
    w = h = 16
    pixels = bytes((x * 16 + y) % 256 for y in range(h) for x in range(w))
    img = zlib.compress(pixels)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", None,
            stream(img, b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                        b"/BitsPerComponent 8 /Filter /FlateDecode " % (w, h))]
    kids = []
    for _ in range(n_pages):
        n = len(objs) + 1
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    b"/Resources << /XObject << /Im1 3 0 R >> >> /Contents %d 0 R >>" % (n + 1))
        objs.append(stream(b"q 500 0 0 700 56 46 cm /Im1 Do Q\n"))
        kids.append(n)
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return pdf(objs)


def encrypted_pdf():
    # /U must equal RC4(key(password), padding); random bytes fail for the empty
    # password, so a reader needs the (unknown) user password.
    o = bytes((i * 37 + 11) % 256 for i in range(32))
    u = bytes((i * 91 + 5) % 256 for i in range(32))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            stream(bytes(range(40))),
            b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (o.hex().encode(), u.hex().encode())]
    return pdf(objs, b"/Encrypt 5 0 R /ID [<00112233445566778899aabbccddeeff><00112233445566778899aabbccddeeff>] ")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    t = text_pdf()
    files = {
        "text.pdf": t,
        "image.pdf": image_pdf(),
        "encrypted.pdf": encrypted_pdf(),
        "corrupt.pdf": b"%PDF-1.7\n" + bytes((i * 7919) % 251 for i in range(3000)),
        "truncated.pdf": t[: t.index(b"stream\n") + 40],
    }
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
