# hash comment
require /* inline */ ["fileinto" /* inside a list */, "envelope"] /* after */ ;
/* a bracket comment
   over several lines * with stars ** and / slashes */
if /* before the test */ header :contains # hash comment inside a test
   "subject" "hello" {
    fileinto "comments"; # trailing
}
