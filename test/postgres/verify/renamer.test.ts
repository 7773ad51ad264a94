import { describe, expect, it } from 'vitest';
import { renamer } from '../../../src/postgres/verify/render.ts';

describe('renamer: the database name rewritten where it names the database, nowhere else', () => {
  it('renames CREATE/ALTER/ON/IN DATABASE, bare or quoted; keeps settings, comments and literals that hold the name', () => {
    const shop = renamer('shop');
    expect(shop.entryName('shop')).toBe(':database');
    expect(shop.entryName('DATABASE shop')).toBe('DATABASE :database');
    // A line of a comment that is just the name is text, not the database's name.
    expect(shop('shop')).toBe('shop');
    expect(shop("CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8';")).toBe(
      "CREATE DATABASE :database WITH TEMPLATE = template0 ENCODING = 'UTF8';",
    );
    // QA: a search_path or comment naming the database read as a difference on every restore.
    expect(shop("ALTER DATABASE shop SET search_path TO 'shop', 'public';")).toBe("ALTER DATABASE :database SET search_path TO 'shop', 'public';");
    expect(shop("COMMENT ON DATABASE shop IS 'the shop db';")).toBe("COMMENT ON DATABASE :database IS 'the shop db';");
    // Review: the same words inside a literal are the comment's text.
    expect(shop("COMMENT ON DATABASE shop IS 'see DATABASE shop, it''s DATABASE shop';")).toBe(
      "COMMENT ON DATABASE :database IS 'see DATABASE shop, it''s DATABASE shop';",
    );
    expect(shop("ALTER ROLE app IN DATABASE shop SET work_mem TO '8MB';")).toBe("ALTER ROLE app IN DATABASE :database SET work_mem TO '8MB';");
    expect(shop('GRANT CONNECT ON DATABASE shop TO app;')).toBe('GRANT CONNECT ON DATABASE :database TO app;');
    expect(shop('ALTER DATABASE shop_archive OWNER TO x;')).toBe('ALTER DATABASE shop_archive OWNER TO x;');
    const odd = renamer('Shop "DB"');
    expect(odd.entryName('"Shop ""DB"""')).toBe(':database');
    expect(odd(`ALTER DATABASE "Shop ""DB""" SET search_path TO 'Shop "DB"';`)).toBe(`ALTER DATABASE :database SET search_path TO 'Shop "DB"';`);
    expect(renamer('a.b+c')('ALTER DATABASE "a.b+c" OWNER TO x;')).toBe('ALTER DATABASE :database OWNER TO x;');
  });
});
