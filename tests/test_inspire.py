"""INSPIRE: ISO 19139 records, and the download good practice on OGC API Features
(describedby, license, enclosure, Content-Language, INSPIRE CRSs), against a real server.

Licence links point to local summary pages (``/licences/…``, which answer 200 here); those
pages link to the official texts on the internet, which are only checked for presence.
ISO records are validated against the ISO 19139 (2006-05-04) XSDs when a local copy is found
(pycsw's wheel ships them: ``pip install --no-deps pycsw``), else checked field by field.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyogrio
import pytest
import requests
from lxml import etree, html

pytestmark = pytest.mark.server

FEATURES = ["bretagne-parcels", "bretagne-agri-parcels", "bretagne-communes",
            "bretagne-planning-zones", "guyane-parcels", "guyane-communes"]
IMAGERY = ["bretagne-s2", "bretagne-ndvi", "guyane-s2", "guyane-ndvi", "sentinel-2-l2a",
           "products"]
NS = {"gmd": "http://www.isotc211.org/2005/gmd", "gco": "http://www.isotc211.org/2005/gco",
      "gmx": "http://www.isotc211.org/2005/gmx", "srv": "http://www.isotc211.org/2005/srv",
      "xlink": "http://www.w3.org/1999/xlink"}
GPKG = "application/geopackage+sqlite3"


def get_json(server, path, **params):
    response = requests.get(f"{server.url}{path}", params={"f": "json", **params}, timeout=120)
    assert response.status_code == 200, response.text[:300]
    return response.json()


def links(document, rel):
    return [link for link in document["links"] if link["rel"] == rel]


@pytest.fixture(scope="module")
def iso_schema():
    """ISO 19139 gmd + gmx + srv schemas from a local pycsw copy, or None."""
    spec = importlib.util.find_spec("pycsw")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "plugins" / "profiles" / "apiso" / \
        "schemas" / "ogc" / "iso" / "19139" / "20060504"
    if not (root / "gmd" / "gmd.xsd").exists():
        return None
    wrapper = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
        targetNamespace="urn:sentinelle:iso" elementFormDefault="qualified">
      <xs:import namespace="{NS['gmd']}" schemaLocation="{(root / 'gmd' / 'gmd.xsd').as_uri()}"/>
      <xs:import namespace="{NS['gmx']}" schemaLocation="{(root / 'gmx' / 'gmx.xsd').as_uri()}"/>
      <xs:import namespace="{NS['srv']}" schemaLocation="{(root / 'srv' / 'srv.xsd').as_uri()}"/>
    </xs:schema>"""
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), base_url=root.as_uri() + "/"))


def check_iso(content: bytes, identifier: str, schema) -> etree._Element:
    root = etree.fromstring(content)
    assert root.tag == f"{{{NS['gmd']}}}MD_Metadata"
    assert root.xpath("gmd:fileIdentifier/gco:CharacterString/text()",
                      namespaces=NS) == [identifier]
    assert root.xpath("gmd:language/gmd:LanguageCode/@codeListValue", namespaces=NS) == ["fre"]
    assert root.find("gmd:contact/gmd:CI_ResponsibleParty", NS) is not None
    assert root.find("gmd:dateStamp", NS) is not None
    ident = root.find("gmd:identificationInfo", NS)[0]
    # multilingual title (French, English alternate)
    assert ident.xpath(".//gmd:citation//gmd:title//gmd:LocalisedCharacterString/@locale",
                       namespaces=NS) == ["#eng"]
    assert root.xpath("gmd:locale/gmd:PT_Locale/@id", namespaces=NS) == ["eng"]
    # unique resource identifier, conditions and limitations (INSPIRE code list anchors)
    assert ident.xpath(".//gmd:citation//gmd:identifier//gmd:code/gco:CharacterString/text()",
                       namespaces=NS)
    anchors = ident.xpath(".//gmd:resourceConstraints//gmd:otherConstraints/gmx:Anchor/"
                          "@xlink:href", namespaces=NS)
    assert any("LimitationsOnPublicAccess" in a for a in anchors)
    assert len(anchors) == 2
    # conformity against an INSPIRE regulation
    assert root.xpath(".//gmd:DQ_DomainConsistency//gmd:specification//gmd:title/"
                      "gco:CharacterString/text()", namespaces=NS)[0].startswith("Règlement")
    if schema is not None:
        assert schema.validate(root), schema.error_log
    return root


@pytest.mark.parametrize("collection", FEATURES)
def test_feature_collection_links(server, collection, iso_schema):
    document = get_json(server, f"/collections/{collection}")
    # describedby → the ISO 19139 record of the dataset
    [described] = links(document, "describedby")
    assert described["type"] == "application/xml"
    record = requests.get(described["href"], timeout=60)
    assert record.status_code == 200
    assert record.headers["Content-Type"].startswith("application/xml")
    root = check_iso(record.content, collection, iso_schema)
    theme = root.xpath(".//gmd:descriptiveKeywords//gmd:keyword/gmx:Anchor/@xlink:href",
                       namespaces=NS)
    assert any(t.startswith("http://inspire.ec.europa.eu/theme/") for t in theme)
    # license → a local page (200), which links to the official text
    [licence] = links(document, "license")
    assert licence["type"] == "text/html"
    page = requests.get(licence["href"], timeout=60)
    assert page.status_code == 200 and 'rel="license"' in page.text
    # enclosure → the whole GeoPackage, with type, length, title, hreflang
    [enclosure] = links(document, "enclosure")
    assert enclosure["type"] == GPKG and enclosure["hreflang"] == "fr" and enclosure["title"]
    head = requests.head(enclosure["href"], timeout=60)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == enclosure["length"] > 0
    assert head.headers["Content-Type"] == GPKG


def test_enclosure_downloads_the_whole_dataset(server, tmp_path):
    document = get_json(server, "/collections/guyane-communes")
    [enclosure] = links(document, "enclosure")
    response = requests.get(enclosure["href"], timeout=60)
    assert len(response.content) == enclosure["length"]
    path = tmp_path / "guyane-communes.gpkg"
    path.write_bytes(response.content)
    items = get_json(server, "/collections/guyane-communes/items", limit=1000)
    assert pyogrio.read_info(path)["features"] == items["numberMatched"]


def test_collections_list_carries_the_links(server):
    document = get_json(server, "/collections")
    by_id = {c["id"]: c for c in document["collections"]}
    for collection in FEATURES:
        rels = {link["rel"] for link in by_id[collection]["links"]}
        assert {"license", "describedby", "enclosure"} <= rels
    for collection in IMAGERY:
        rels = {link["rel"] for link in by_id[collection]["links"]}
        assert {"license", "describedby"} <= rels


@pytest.mark.parametrize("collection", IMAGERY)
def test_imagery_collections_describedby(server, collection, iso_schema):
    document = get_json(server, f"/collections/{collection}")
    [described] = links(document, "describedby")
    record = requests.get(described["href"], timeout=60)
    root = check_iso(record.content, collection, iso_schema)
    assert root.xpath(".//gco:Distance/text()", namespaces=NS) == ["10"]
    licence = requests.get(links(document, "license")[0]["href"], timeout=60)
    assert licence.status_code == 200 and "sentinels.copernicus.eu" in licence.text


def test_scene_records_link_their_iso_record(server, iso_schema):
    items = get_json(server, "/collections/sentinel-2-l2a/items", limit=3)
    for feature in items["features"]:
        [described] = links(feature, "describedby")
        assert described["type"] == "application/xml"
        record = requests.get(described["href"], timeout=60)
        root = check_iso(record.content, feature["id"], iso_schema)
        assert root.xpath("gmd:parentIdentifier/gco:CharacterString/text()",
                          namespaces=NS) == ["sentinel-2-l2a"]


def test_service_record(server, iso_schema):
    record = requests.get(f"{server.url}/metadata/sentinelle-wms.xml", timeout=60)
    root = check_iso(record.content, "sentinelle-wms", iso_schema)
    service = root.find("gmd:identificationInfo/srv:SV_ServiceIdentification", NS)
    assert service.xpath("srv:serviceType/gco:LocalName/text()", namespaces=NS) == ["view"]
    coupled = service.xpath("srv:operatesOn/@xlink:href", namespaces=NS)
    assert f"{server.url}/metadata/bretagne-ndvi.xml" in coupled
    assert requests.get(coupled[0], timeout=60).status_code == 200


def collections_document(server, how, lang="fr", encoding="gzip"):
    """``/collections`` as JSON or HTML: its links and the response."""
    headers = {"Accept-Language": lang, "Accept-Encoding": encoding}
    response = requests.get(f"{server.url}/collections", params={"f": how}, headers=headers,
                            timeout=120)
    assert response.status_code == 200
    if how == "json":
        return response.json()["links"], response
    page = html.fromstring(response.content)
    found = [{"rel": a.get("rel"), "href": a.get("href"), "type": a.get("type"),
              "hreflang": a.get("hreflang"), "title": a.text_content(),
              **({"length": int(a.get("data-length"))} if a.get("data-length") else {})}
             for a in page.xpath("//a[@rel]")]
    return found, response


@pytest.mark.parametrize("how, lang, encoding", [
    ("json", "fr", "gzip"), ("json", "en", "identity"), ("html", "fr", "gzip"),
    ("html", "en", "identity")])
def test_collections_document_links(server, how, lang, encoding, iso_schema):
    """INSPIRE download good practice on /collections itself: describedby (ISO XML),
    license (200), enclosure (type, length, title, hreflang; HEAD gives the length)."""
    found, response = collections_document(server, how, lang, encoding)
    assert response.headers["Content-Language"].startswith(lang)
    described = [link for link in found if link["rel"] == "describedby"]
    assert {link["href"].rsplit("/", 1)[-1] for link in described} >= {
        "sentinelle-api.xml", "sentinel-2-l2a.xml", "products.xml"}
    for link in described:
        assert link["type"] == "application/xml" and link["title"]
        record = requests.get(link["href"], timeout=60)
        assert record.status_code == 200
        assert record.headers["Content-Type"].startswith("application/xml")
        identifier = link["href"].rsplit("/", 1)[-1][:-4]
        check_iso(record.content, identifier, iso_schema)
    licences = [link for link in found if link["rel"] == "license"]
    assert {link["href"].rsplit("/", 1)[-1] for link in licences} == {"etalab-2.0",
                                                                      "copernicus"}
    for link in licences:
        page = requests.get(link["href"], timeout=60)
        assert page.status_code == 200 and 'rel="license"' in page.text
    enclosures = [link for link in found if link["rel"] == "enclosure"]
    assert {link["href"].rsplit("/", 1)[-1] for link in enclosures} == {
        f"{c}.gpkg" for c in FEATURES}
    titles = {link["title"] for link in enclosures}
    assert len(titles) == len(FEATURES)
    assert all(("complète" in t) == (lang == "fr") for t in titles)
    for link in enclosures:
        assert link["type"] == GPKG and link["hreflang"] == "fr" and link["length"] > 0
        head = requests.head(link["href"], timeout=60)
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == link["length"]
        assert head.headers["Content-Type"] == GPKG
    if how == "json":  # pygeoapi's own links are kept, nothing twice
        assert {link["rel"] for link in found} >= {"self", "alternate"}
        pairs = [(link["rel"], link["href"]) for link in found]
        assert len(pairs) == len(set(pairs))


def test_download_service_record(server, iso_schema):
    record = requests.get(f"{server.url}/metadata/sentinelle-api.xml", timeout=60)
    root = check_iso(record.content, "sentinelle-api", iso_schema)
    service = root.find("gmd:identificationInfo/srv:SV_ServiceIdentification", NS)
    assert service.xpath("srv:serviceType/gco:LocalName/text()", namespaces=NS) == [
        "download"]
    assert "infoFeatureAccessService" in service.xpath(
        ".//gmd:keyword/gco:CharacterString/text()", namespaces=NS)
    coupled = service.xpath("srv:operatesOn/@xlink:href", namespaces=NS)
    assert {href.rsplit("/", 1)[-1] for href in coupled} == {f"{c}.xml" for c in FEATURES}
    operations = service.xpath(".//srv:connectPoint//gmd:URL/text()", namespaces=NS)
    assert f"{server.url}/collections" in operations
    assert requests.get(operations[-1], params={"f": "json"}, timeout=60).status_code == 200


def test_unknown_record_is_404(server):
    assert requests.get(f"{server.url}/metadata/nothing-here.xml", timeout=60).status_code == 404
    assert requests.head(f"{server.url}/download/nothing.gpkg", timeout=60).status_code == 404


def test_dcat_jsonld(server):
    response = requests.get(f"{server.url}/metadata/bretagne-parcels.jsonld", timeout=60)
    assert response.status_code == 200
    document = response.json()
    assert "@context" in document and "dcat" in document["@context"]


@pytest.mark.parametrize("collection, crs", [
    ("bretagne-parcels", ["4258", "3035", "2154"]), ("guyane-parcels", ["2972", "4326"])])
def test_inspire_crs_lists(server, collection, crs):
    document = get_json(server, f"/collections/{collection}")
    listed = " ".join(document["crs"])
    for code in crs:
        assert f"/EPSG/0/{code}" in listed
    # and the reprojection answers
    items = get_json(server, f"/collections/{collection}/items", limit=1,
                     crs=f"http://www.opengis.net/def/crs/EPSG/0/{crs[0]}")
    assert items["features"]


#: Paths with the language pygeoapi 0.21 reports there; coverage GeoTIFFs and /jobs report the
#: system locale (api/__init__.py: "Content-Language is in the system locale").
LANGUAGE_PATHS = ["/", "/conformance", "/collections", "/collections/bretagne-parcels",
                  "/collections/bretagne-parcels/items?limit=1",
                  "/collections/bretagne-parcels/queryables",
                  "/collections/sentinel-2-l2a/items?limit=1", "/processes",
                  "/collections/bretagne-ndvi/map?bbox=-1.58,48.09,-1.57,48.10&width=32"
                  "&height=32&datetime=2024-06-11",
                  "/licences/etalab-2.0", "/wms?SERVICE=WMS&REQUEST=GetCapabilities"]
ANY_LANGUAGE_PATHS = ["/collections/bretagne-ndvi/coverage?f=GTiff&datetime=2024-06-11"
                      "&bbox=-1.58,48.09,-1.57,48.10", "/jobs", "/metadata/bretagne-parcels.xml",
                      "/download/guyane-communes.gpkg"]


@pytest.mark.parametrize("path", LANGUAGE_PATHS)
@pytest.mark.parametrize("how", ["header", "lang"])
def test_content_language_follows_the_request(server, path, how):
    for lang in ("fr", "en"):
        url = f"{server.url}{path}"
        if how == "lang" and path.startswith("/wms"):
            url += "&LANGUAGE=" + {"fr": "fre", "en": "eng"}[lang]
        elif how == "lang":
            url += ("&" if "?" in url else "?") + f"lang={lang}"
        headers = {"Accept-Language": lang} if how == "header" else {}
        response = requests.get(url, headers=headers, timeout=120)
        assert response.status_code == 200, (path, response.text[:200])
        if path.startswith("/wms") and how == "header":
            lang = "fr"  # WMS: LANGUAGE parameter only (INSPIRE), French by default
        assert response.headers.get("Content-Language", "").startswith(lang), (path, lang)


@pytest.mark.parametrize("path", ANY_LANGUAGE_PATHS)
def test_content_language_everywhere(server, path):
    response = requests.get(f"{server.url}{path}", timeout=120)
    assert response.status_code == 200
    assert response.headers.get("Content-Language")
