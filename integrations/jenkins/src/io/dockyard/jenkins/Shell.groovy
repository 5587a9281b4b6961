package io.dockyard.jenkins

/**
 * Quoting for `sh` steps. Every value a pipeline passes becomes one shell word: single quotes keep spaces,
 * double quotes, `$`, backticks, backslashes and newlines literal, and a single quote inside is written as
 * '\'' (close the quote, an escaped quote, reopen), the only character single quotes cannot hold.
 *
 * Plain loops instead of closures: this class runs CPS-transformed inside Jenkins, where loops are safe
 * everywhere and closures in helper code are not on older Pipeline versions.
 */
class Shell implements Serializable {

    static String quote(Object value) {
        return "'" + String.valueOf(value).replace("'", "'\\''") + "'"
    }

    static String join(List words) {
        List<String> quoted = []
        for (Object word : words) {
            quoted.add(quote(word))
        }
        return quoted.join(' ')
    }
}
